// The stores the server and the workers depend on. `AppDatabase` is the real implementation.
// Methods are synchronous: callers are both async handlers and Dispatch worker threads.
//
// Tenants: what answers a request takes the request's tenant and sees only that tenant's rows, so
// another tenant's id reads as unknown. The worker pool is tenant-agnostic: it claims, records and
// finishes jobs by id, and reads a job's dataset by id (`job(id:)`, `dataset(id:)`).

public protocol JobRepository: Sendable {
    /// Inserts a queued job of `job.tenant`. With an idempotency key that tenant used before,
    /// returns the existing job and `created == false`. Refuses (`JobStoreError.tooManyActiveJobs`,
    /// `.tooManyMPIProcesses`) a job that would take the tenant past `limits`, in the inserting transaction.
    func createJob(_ job: NewJob, limits: TenantLimits) throws -> (job: JobRecord, created: Bool)
    /// Any tenant's job: for the worker pool and the server's own bookkeeping, never for answering
    /// a request (use `job(id:tenant:)`).
    func job(id: String) throws -> JobRecord?
    /// The job if it belongs to `tenant`, nil otherwise.
    func job(id: String, tenant: String) throws -> JobRecord?
    /// The tenant's jobs, newest first. `cursor` is the opaque `nextCursor` of the previous page;
    /// `nextCursor` is nil at the end. `status` nil lists all of them.
    func listJobs(tenant: String, status: JobStatus?, limit: Int, cursor: String?) throws -> (jobs: [JobRecord], nextCursor: String?)
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
    /// The rows after epoch `afterEpoch`, in order: what a follower of a running job has not seen yet.
    func metrics(jobId: String, afterEpoch: Int) throws -> [MetricsRow]
    /// Marks a running job finished (`succeeded`, `failed` or `cancelled`).
    func finishJob(
        id: String, status: JobStatus, errorCode: String?, errorMessage: String?,
        result: String?, bestEpoch: Int?, stoppedEarly: Bool
    ) throws
    /// A queued job is cancelled at once; a running one gets `cancelRequested`; a finished one is
    /// unchanged. Returns the job after the change, nil if the tenant has no such job.
    func requestCancel(id: String, tenant: String) throws -> JobRecord?
    func isCancelRequested(id: String) throws -> Bool
    /// At start-up: every running job goes back to the queue, except those with a cancel request,
    /// which become cancelled. Returns how many were requeued. In a fleet (PostgreSQL) only the jobs
    /// this node left running and those whose lease expired: the other nodes' live jobs stay theirs.
    func requeueInterruptedJobs() throws -> Int
    /// A fleet's store (PostgreSQL): pushes on the leases of `jobIds`, the running jobs this node
    /// claimed and still trains, so no other node takes them. A job this node claimed but no longer
    /// trains (its outcome could not be recorded) is left to expire, and the sweep requeues it.
    /// Called by the worker pool's heartbeat. A store of one process (SQLite) has no leases.
    func renewLeases(jobIds: [String]) throws
    /// A fleet's store (PostgreSQL): puts running jobs whose lease expired (their node died or lost
    /// the database) back in the queue, cancelling those with a cancel request. Returns how many were
    /// requeued. Always 0 for a store of one process (SQLite).
    func requeueExpiredLeases() throws -> Int
    /// Puts a running job back in the queue: an attempt failed with attempts left (`countingAttempt`),
    /// or a graceful shutdown handed it back (not counting: a rolling deploy must not use up a long
    /// job's `max_attempts`; the attempt keeps its number, and `handedBack` counts it out).
    func requeueJob(id: String, countingAttempt: Bool) throws
    /// Deletes a finished job of the tenant and its metrics. False if the tenant has no such job;
    /// `JobStoreError.wrongState` if the job is not finished.
    func deleteJob(id: String, tenant: String) throws -> Bool
    /// Every status, with 0 for those that have no job (all tenants: the server's `/metrics`).
    func countJobsByStatus() throws -> [JobStatus: Int]
    /// Number of queued or running jobs that use the dataset: as their data, or as their validation or test set.
    func activeJobCount(datasetId: String) throws -> Int
}

extension JobRepository {
    /// A failed attempt back in the queue: it counts against `max_attempts`.
    public func requeueJob(id: String) throws { try requeueJob(id: id, countingAttempt: true) }

    /// One process owns the queue: nothing to renew.
    public func renewLeases(jobIds: [String]) throws {}

    /// One process owns the queue: `requeueInterruptedJobs()` at start-up is all it needs.
    public func requeueExpiredLeases() throws -> Int { 0 }

    /// An epoch without a checkpoint (fine-tuning after training).
    public func recordEpoch(_ row: MetricsRow, progress: Double, latest: String) throws {
        try recordEpoch(row, progress: progress, latest: latest, checkpointEpoch: nil)
    }

    /// Inserts a queued job with no limit on the tenant's queued and running jobs.
    public func createJob(_ job: NewJob) throws -> (job: JobRecord, created: Bool) {
        try createJob(job, limits: TenantLimits())
    }

    /// Inserts a queued job, limiting only the tenant's queued and running jobs.
    public func createJob(_ job: NewJob, activeJobLimit: Int?) throws -> (job: JobRecord, created: Bool) {
        try createJob(job, limits: TenantLimits(activeJobs: activeJobLimit))
    }
}

public protocol DatasetRepository: Sendable {
    /// Stores the dataset; with a quota, refuses (`JobStoreError.tooManyDatasets`,
    /// `.datasetBytesExceeded`) one that would take its tenant past it, in the inserting transaction.
    func insertDataset(_ record: DatasetRecord, quota: DatasetQuota?) throws
    /// Any tenant's dataset: for the worker pool, which trains a job on the dataset it was pinned
    /// to. Never for answering a request (use `dataset(id:tenant:)`).
    func dataset(id: String) throws -> DatasetRecord?
    /// The dataset if it belongs to `tenant`, nil otherwise.
    func dataset(id: String, tenant: String) throws -> DatasetRecord?
    /// The tenant's datasets, newest first.
    func listDatasets(tenant: String) throws -> [DatasetRecord]
    /// How many datasets the tenant keeps and their stored bytes (data and labels).
    func datasetUsage(tenant: String) throws -> (count: Int, bytes: Int)
    /// Deletes the tenant's dataset unless a queued or running job uses it
    /// (`JobStoreError.datasetInUse`). False if the tenant has no such dataset.
    func deleteDataset(id: String, tenant: String) throws -> Bool
    /// Gives IDX or NPY data that waits for its labels (`isUnlabeled`) its labels file, task and
    /// classes, and adds `labelsBytes` to its size, in one transaction (which also checks the
    /// byte quota of the dataset's tenant, when given). Returns the updated record; nil if
    /// unknown; `JobStoreError.wrongState` if the dataset is not waiting for labels.
    func attachLabels(datasetId: String, labelsFileName: String, labelsBytes: Int, task: String, classes: [String]?,
                      quota: DatasetQuota?) throws -> DatasetRecord?
}

extension DatasetRepository {
    /// Stores the dataset with no quota.
    public func insertDataset(_ record: DatasetRecord) throws {
        try insertDataset(record, quota: nil)
    }

    /// Attaches labels with no quota.
    public func attachLabels(datasetId: String, labelsFileName: String, labelsBytes: Int, task: String, classes: [String]?) throws -> DatasetRecord? {
        try attachLabels(datasetId: datasetId, labelsFileName: labelsFileName, labelsBytes: labelsBytes, task: task, classes: classes, quota: nil)
    }
}

public protocol StudyRepository: Sendable {
    /// In one write transaction: inserts the study and one queued job per element of `jobs`, the
    /// job at index i recording `parameters[i]` (JSON object text) as its `studyParameters`.
    /// The jobs belong to the study's tenant. Refuses (`JobStoreError.tooManyActiveJobs`,
    /// `.tooManyMPIProcesses`) a study whose jobs would take the tenant past `limits`. Either
    /// everything is stored or nothing. Jobs' idempotency keys are ignored. Returns the stored study
    /// and jobs, in the order given.
    func createStudy(_ study: StudyRecord, jobs: [NewJob], parameters: [String], limits: TenantLimits) throws
        -> (study: StudyRecord, jobs: [JobRecord])
    /// The study if it belongs to `tenant`, nil otherwise.
    func study(id: String, tenant: String) throws -> StudyRecord?
    /// The tenant's studies, newest first.
    func listStudies(tenant: String) throws -> [StudyRecord]
    /// The study's jobs that still exist, in the order `createStudy` was given them.
    func jobs(studyId: String) throws -> [JobRecord]
}

extension StudyRepository {
    /// Stores a study with no limit on its tenant's queued and running jobs.
    public func createStudy(_ study: StudyRecord, jobs: [NewJob], parameters: [String]) throws -> (study: StudyRecord, jobs: [JobRecord]) {
        try createStudy(study, jobs: jobs, parameters: parameters, limits: TenantLimits())
    }

    /// Stores a study, limiting only the tenant's queued and running jobs.
    public func createStudy(_ study: StudyRecord, jobs: [NewJob], parameters: [String], activeJobLimit: Int?) throws
        -> (study: StudyRecord, jobs: [JobRecord])
    {
        try createStudy(study, jobs: jobs, parameters: parameters, limits: TenantLimits(activeJobs: activeJobLimit))
    }
}

/// Access tokens, for `descent token …` and for authenticating requests.
public protocol TokenRepository: Sendable {
    /// Makes a new random token for `tenant` and stores its hash. The token is returned this once
    /// and stored nowhere. `JobStoreError.invalidTenantName` for a name `Tenant.isValidName` refuses.
    func createToken(tenant: String) throws -> (record: TokenRecord, token: String)
    /// The tenant of a valid token; nil for an unknown or revoked one.
    func tenant(authenticatedBy token: String) throws -> String?
    /// Oldest first, revoked ones included.
    func listTokens() throws -> [TokenRecord]
    /// Revokes the token from now on (revoking it again keeps the first time). Returns the token
    /// after the change; nil if unknown.
    func revokeToken(id: String) throws -> TokenRecord?
}

/// Carries job events between the servers of a fleet, so a client sees every job's events whichever
/// server it talks to. `broadcast` returns at once; `listen` hands over every payload broadcast by
/// any server, this one included.
public protocol JobEventBus: Sendable {
    func broadcast(_ payload: String)
    func listen(_ handler: @escaping @Sendable (String) -> Void) throws
}
