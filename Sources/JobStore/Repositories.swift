// The stores the server and the workers depend on. `AppDatabase` is the real implementation.
// Methods are synchronous: callers are both async handlers and Dispatch worker threads.

public protocol JobRepository: Sendable {
    /// Inserts a queued job. With an idempotency key that already exists, returns the existing
    /// job and `created == false`.
    func createJob(_ job: NewJob) throws -> (job: JobRecord, created: Bool)
    func job(id: String) throws -> JobRecord?
    /// Newest first. `cursor` is the opaque `nextCursor` of the previous page; `nextCursor` is
    /// nil at the end. `status` nil lists all jobs.
    func listJobs(status: JobStatus?, limit: Int, cursor: String?) throws -> (jobs: [JobRecord], nextCursor: String?)
    /// In one write transaction: takes the queued job with the highest priority, then the oldest,
    /// marks it running, sets `startedAt`, adds one to `attempt`. Nil when the queue is empty.
    /// Safe to call from several threads and processes: a job is handed out once.
    func claimNextJob() throws -> JobRecord?
    /// In one transaction: stores the metrics row of a running job and updates its epoch,
    /// progress and latest metrics (JSON text), and with `checkpointEpoch` the epoch of the
    /// checkpoint file written just before (nil leaves the pointer as it is).
    func recordEpoch(_ row: MetricsRow, progress: Double, latest: String, checkpointEpoch: Int?) throws
    /// A resumed attempt: drops the metrics rows after `epoch` and sets the job's epoch back to it.
    func rewindJob(id: String, toEpoch epoch: Int) throws
    /// Ordered by epoch.
    func metrics(jobId: String) throws -> [MetricsRow]
    /// Marks a running job finished (`succeeded`, `failed` or `cancelled`).
    func finishJob(
        id: String, status: JobStatus, errorCode: String?, errorMessage: String?,
        result: String?, bestEpoch: Int?, stoppedEarly: Bool
    ) throws
    /// A queued job is cancelled at once; a running one gets `cancelRequested`; a finished one is
    /// unchanged. Returns the job after the change, nil if unknown.
    func requestCancel(id: String) throws -> JobRecord?
    func isCancelRequested(id: String) throws -> Bool
    /// At start-up: every running job goes back to the queue, except those with a cancel request,
    /// which become cancelled. Returns how many were requeued.
    func requeueInterruptedJobs() throws -> Int
    /// Puts a running job back in the queue (an attempt failed with attempts left).
    func requeueJob(id: String) throws
    /// Deletes a finished job and its metrics. False if unknown; `JobStoreError.wrongState` if
    /// the job is not finished.
    func deleteJob(id: String) throws -> Bool
    /// Every status, with 0 for those that have no job.
    func countJobsByStatus() throws -> [JobStatus: Int]
    /// Number of queued or running jobs that use the dataset.
    func activeJobCount(datasetId: String) throws -> Int
}

extension JobRepository {
    /// An epoch without a checkpoint (fine-tuning after training).
    public func recordEpoch(_ row: MetricsRow, progress: Double, latest: String) throws {
        try recordEpoch(row, progress: progress, latest: latest, checkpointEpoch: nil)
    }
}

public protocol DatasetRepository: Sendable {
    func insertDataset(_ record: DatasetRecord) throws
    func dataset(id: String) throws -> DatasetRecord?
    /// Newest first.
    func listDatasets() throws -> [DatasetRecord]
    /// Deletes the dataset unless a queued or running job uses it (`JobStoreError.datasetInUse`).
    /// False if unknown.
    func deleteDataset(id: String) throws -> Bool
    /// Gives IDX or NPY data that waits for its labels (`isUnlabeled`) its labels file, task and
    /// classes, and adds `labelsBytes` to its size, in one transaction. Returns the updated record;
    /// nil if unknown; `JobStoreError.wrongState` if the dataset is not waiting for labels.
    func attachLabels(datasetId: String, labelsFileName: String, labelsBytes: Int, task: String, classes: [String]?) throws -> DatasetRecord?
}

public protocol StudyRepository: Sendable {
    /// In one write transaction: inserts the study and one queued job per element of `jobs`, the
    /// job at index i recording `parameters[i]` (JSON object text) as its `studyParameters`.
    /// Either everything is stored or nothing. Jobs' idempotency keys are ignored. Returns the
    /// stored study and jobs, in the order given.
    func createStudy(_ study: StudyRecord, jobs: [NewJob], parameters: [String]) throws -> (study: StudyRecord, jobs: [JobRecord])
    func study(id: String) throws -> StudyRecord?
    /// Newest first.
    func listStudies() throws -> [StudyRecord]
    /// The study's jobs that still exist, in the order `createStudy` was given them.
    func jobs(studyId: String) throws -> [JobRecord]
}
