import Datasets
import Foundation
import JobStore
import Logging
import NeuralNetwork
import Training

/// Trains one claimed job from start to finish and records the outcome. Never throws: every
/// failure ends as a `failed` job with a message, and the worker moves on.
struct JobRunner: Sendable {
    let jobs: any JobRepository
    let datasets: any DatasetRepository
    let events: JobEventHub
    let folder: DataFolder
    let logger: Logger
    /// Starts jobs in processes of their own: `distributed.processes` jobs under mpirun, every job with process
    /// isolation (nil in `descent worker`, which trains itself).
    let launcher: WorkerProcessLauncher?
    /// Waits before each new try of a write that records a job's state (`persist`): about a minute in
    /// all, which bridges a database restart or a moment of full disk.
    var storeRetryDelays: [Double] = [0.25, 0.5, 1, 2, 4, 8, 15, 30]
    /// The wait before a job that failed on storage goes back to the queue, doubling per attempt (then at most a minute):
    /// a retry straight away meets the same full disk or unreachable database and burns the attempts in a second.
    var storageRetryBackoff: Double = 2

    init(jobs: any JobRepository, datasets: any DatasetRepository, events: JobEventHub, dataDirectory: URL, logger: Logger,
         launcher: WorkerProcessLauncher? = nil) {
        self.jobs = jobs
        self.datasets = datasets
        self.events = events
        folder = DataFolder(root: dataDirectory)
        self.logger = logger
        self.launcher = launcher
    }

    /// Trains `job` in this process, or, when `collective` is nil and the server has a launcher, in processes
    /// of its own (`WorkerProcessLauncher`: one worker, or MPI ranks). With `collective` this process is rank 0
    /// of a `distributed.processes` job (`descent worker`): it trains its share and records the job as any worker would.
    func run(_ job: JobRecord, stopCheck: @escaping @Sendable () -> StopReason?, collective: (any ProcessCollective)? = nil) {
        if collective == nil, let launcher, launcher.launches(job) {
            launcher.run(job, runner: self, stopCheck: stopCheck)
            return
        }
        var logger = logger
        logger[metadataKey: "job"] = "\(job.id)"
        events.publish(.status(jobId: job.id, status: .running))
        if job.countedAttempts > job.maxAttempts {
            finish(job, .failed, code: "too_many_attempts",
                   message: "the job was interrupted \(job.countedAttempts - 1) times (max_attempts \(job.maxAttempts))")
            return
        }
        logger.info("training job (attempt \(job.attempt))")
        let started = Date()
        do {
            let (spec, data) = try prepare(job)
            let observer = Observer(job: job, spec: spec, jobs: jobs, events: events, folder: folder, stopCheck: stopCheck, logger: logger)
            if spec.task == .gan {
                try runGAN(job, spec: spec, data: data, observer: observer, started: started, logger: logger)
                return
            }
            let (trainer, outcome) = try train(job, spec: spec, data: data, observer: observer, collective: collective, logger: logger)
            if let failure = observer.failure { throw failure }
            if outcome.wasStopped {
                stopped(job, observer: observer, logger: logger)
                return
            }
            // Every job gets a report: its compression stages, or the one trained (or distilled) model, measured.
            let pipeline = CompressionPipeline(spec: spec, data: data, trained: outcome.model, epochsDone: outcome.history.count,
                                               observer: observer, distillation: trainer.distillation)
            guard let report = try pipeline.run() else {
                if let failure = observer.failure { throw failure }
                stopped(job, observer: observer, logger: logger)
                return
            }
            let served = report.stages[report.stages.count - 1]
            // Stage files first, the report last: a report on disk always names files that exist. The
            // last stage is the model file itself.
            for stage in report.stages.dropLast() {
                try DataFolder.writeAtomically(stage.file, to: folder.modelFile(jobId: job.id, stage: stage.name))
            }
            try DataFolder.writeAtomically(served.file, to: folder.modelFile(jobId: job.id))
            try DataFolder.writeAtomically(Data(report.jsonValue.encodedString().utf8), to: folder.reportFile(jobId: job.id))
            let model = pipeline.finalModel
            // The result describes the served model: its stage's test and validation numbers.
            let test = served.test ?? outcome.test
            let lastTraining = pipeline.lastMetrics ?? outcome.history.last
            func number(_ value: Double?) -> JSONValue { value.map { JSONValue($0) } ?? .null }
            var fields: [String: JSONValue] = [
                "test_accuracy": number(test?.accuracy),
                "test_loss": number(test?.loss),
                "test_macro_f1": number(test?.macroF1),
                "val_accuracy": number(served.validation?.accuracy ?? lastTraining?.validationAccuracy),
                "val_loss": number(served.validation?.loss ?? lastTraining?.validationLoss),
                "train_loss": number(lastTraining?.trainLoss),
                "parameters": JSONValue(model.network.parameterCount),
                "nonzero": JSONValue(served.nonzero),
                "model_bytes": JSONValue(served.bytes),
                "latency_ms_per_sample": JSONValue(served.latencyMillisecondsPerSample),
                "stage": JSONValue(served.name),
                "seconds": JSONValue(Date().timeIntervalSince(started)),
            ]
            if report.stages.count > 1, let trained = report.stages.first {
                fields["trained_test_accuracy"] = number(trained.testAccuracy)
                fields["trained_model_bytes"] = JSONValue(trained.bytes)
            }
            let result = JSONValue.object(fields)
            finish(job, .succeeded, code: nil, message: nil, result: result.encodedString(), bestEpoch: outcome.bestEpoch,
                   stoppedEarly: outcome.stoppedEarly)
            logger.info("job succeeded", metadata: ["test_accuracy": "\(outcome.test?.accuracy ?? .nan)"])
        } catch let error as StorageFailure {
            // The disk or the database, not the job: retried (from its checkpoint), after a wait, while attempts remain.
            retryOrFail(job, code: "storage_error", message: error.description, logger: logger, backoff: true)
        } catch let error as CocoaError {
            retryOrFail(job, code: "storage_error", message: "could not read or write a file: \(error.localizedDescription)", logger: logger,
                        backoff: true)
        } catch let error as POSIXError {
            retryOrFail(job, code: "storage_error", message: "could not write a file: \(error.localizedDescription)", logger: logger, backoff: true)
        } catch let error as TrainingError {
            let code = if case .diverged = error { "diverged" } else { "invalid_spec" }
            finish(job, .failed, code: code, message: error.description)
        } catch let problems as SpecProblems {
            finish(job, .failed, code: "invalid_spec", message: problems.description)
        } catch let error as DatasetError {
            finish(job, .failed, code: "dataset_error", message: error.description)
        } catch {
            finish(job, .failed, code: "internal_error", message: String(describing: error))
        }
    }

    /// Trains from the job's last checkpoint when it has one (a resumed attempt), otherwise from the start.
    private func train(_ job: JobRecord, spec: JobSpec, data: PreparedData, observer: (any TrainingObserver)?,
                       collective: (any ProcessCollective)?, logger: Logger) throws -> (Trainer, TrainingOutcome) {
        // Ranks > 0 of a multi-process job only compute: rank 0 alone writes to the store.
        let records = (collective?.rank ?? 0) == 0
        func makeTrainer() throws -> Trainer {
            let trainer = try Trainer(spec: spec, data: data, transfer: try weightTransfer(for: spec), collective: collective)
            if let distillation = spec.distillation {
                try trainer.distill(from: try savedModel(of: distillation.teacherJob, for: "distillation.teacher_job"))
            }
            return trainer
        }
        if let epoch = job.checkpointEpoch,
           let checkpoint = FileManager.default.contents(atPath: folder.checkpointFile(jobId: job.id, epoch: epoch).path) {
            let trainer = try makeTrainer()
            do {
                if records { try jobs.rewindJob(id: job.id, toEpoch: epoch) }
                let outcome = try trainer.run(observer: observer, resumingFrom: checkpoint)
                logger.info("resumed from the checkpoint of epoch \(epoch)")
                return (trainer, outcome)
            } catch let error as TrainingCheckpoint.LoadError {
                // A damaged checkpoint costs the epochs it held, not the job.
                logger.warning("\(error); training from the start")
                events.publish(.log(jobId: job.id, message: "\(error); training from the start"))
            }
        }
        if records { try jobs.rewindJob(id: job.id, toEpoch: 0) }
        let trainer = try makeTrainer()
        return (trainer, try trainer.run(observer: observer))
    }

    /// Rank r > 0 of a `distributed.processes` job (`descent worker`): loads the job and its data as rank 0
    /// does, trains its share of every step from the same checkpoint, and records nothing.
    func runFollower(_ job: JobRecord, collective: any ProcessCollective) throws {
        let (spec, data) = try prepare(job)
        _ = try train(job, spec: spec, data: data, observer: nil, collective: collective, logger: logger)
    }

    /// A transient failure: back in the queue while attempts remain (the next resumes from the
    /// checkpoint), otherwise failed with the message. With `backoff` (a storage failure) the job waits,
    /// still running, `storageRetryBackoff` × 2^(attempt − 1) seconds (at most 60) first; a cancel ends the wait.
    func retryOrFail(_ job: JobRecord, code: String, message: String, logger: Logger, backoff: Bool = false) {
        guard job.countedAttempts < job.maxAttempts else {
            finish(job, .failed, code: code, message: "\(message) (attempt \(job.countedAttempts) of \(job.maxAttempts))")
            return
        }
        let wait = backoff ? min(60, storageRetryBackoff * Double(1 << min(10, max(0, job.countedAttempts - 1)))) : 0
        logger.warning("attempt \(job.attempt) failed: \(message); back in the queue\(wait > 0 ? " in \(wait) s" : "")")
        events.publish(.log(jobId: job.id, message: "attempt \(job.attempt) failed: \(message); retrying\(wait > 0 ? " in \(wait) s" : "")"))
        let until = Date().addingTimeInterval(wait)
        while Date() < until {
            Thread.sleep(forTimeInterval: min(0.5, until.timeIntervalSinceNow))
            if (try? jobs.isCancelRequested(id: job.id)) == true { return finish(job, .cancelled, code: nil, message: nil) }
        }
        if persist("the requeue of job \(job.id)", { try jobs.requeueJob(id: job.id) }) {
            events.publish(.status(jobId: job.id, status: .queued))
        }
    }

    /// Runs a store operation a job's state depends on (recording its end, a requeue), retrying it with `storeRetryDelays` (a database that
    /// restarts, a disk that is full for a moment). False when every try failed: the job then stays as
    /// the store has it (`running`), this node stops renewing its lease, and the requeue sweep of the
    /// fleet, or the next start, puts it back in the queue. Logs the first and the last failure only.
    func persist(_ what: String, _ write: () throws -> Void) -> Bool {
        for (index, delay) in ([0] + storeRetryDelays).enumerated() {
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            do {
                try write()
                if index > 0 { logger.notice("\(what) was recorded at try \(index + 1)") }
                return true
            } catch let error as JobStoreError {
                // The store answered, and said no (the attempt is no longer the job's): no retry changes that.
                logger.warning("\(what) was refused: \(error)")
                return false
            } catch {
                if index == 0 { logger.warning("could not record \(what): \(StoreFailureText.of(error)); retrying for about \(Int(storeRetryDelays.reduce(0, +))) s") }
                if index == storeRetryDelays.count {
                    logger.error("gave up recording \(what) after \(index + 1) tries: \(StoreFailureText.of(error)). The job stays running in the store until the requeue sweep (a fleet's lease) or the next start puts it back in the queue")
                }
            }
        }
        return false
    }

    /// A job the observer stopped: back in the queue on shutdown, otherwise cancelled.
    private func stopped(_ job: JobRecord, observer: Observer, logger: Logger) {
        if observer.stopReason == .superseded {
            logger.warning("attempt \(job.attempt) is no longer the job's: stopped without touching it")
            return
        }
        if observer.stopReason == .shutdown {
            // A shutdown does not wait a minute for the store: if this fails, the next start requeues the job anyway.
            do {
                try jobs.requeueJob(id: job.id, countingAttempt: false)
                events.publish(.status(jobId: job.id, status: .queued))
                logger.info("job stopped by shutdown; back in the queue")
            } catch {
                logger.error("could not hand job \(job.id) back to the queue: \(error); the next start requeues it")
            }
        } else {
            finish(job, .cancelled, code: nil, message: nil)
        }
    }

    /// Trains a GAN job and saves its generator and discriminator in one safetensors file.
    private func runGAN(_ job: JobRecord, spec: JobSpec, data: PreparedData, observer: Observer, started: Date, logger: Logger) throws {
        var trainer = try GANTrainer(spec: spec, data: data)
        var outcome: GANOutcome
        if let epoch = job.checkpointEpoch,
           let checkpoint = FileManager.default.contents(atPath: folder.checkpointFile(jobId: job.id, epoch: epoch).path) {
            do {
                try jobs.rewindJob(id: job.id, toEpoch: epoch)
                outcome = try trainer.run(observer: observer, resumingFrom: checkpoint)
                logger.info("resumed from the checkpoint of epoch \(epoch)")
            } catch let error as TrainingCheckpoint.LoadError {
                logger.warning("\(error); training from the start")
                try jobs.rewindJob(id: job.id, toEpoch: 0)
                trainer = try GANTrainer(spec: spec, data: data)
                outcome = try trainer.run(observer: observer)
            }
        } else {
            try jobs.rewindJob(id: job.id, toEpoch: 0)
            outcome = try trainer.run(observer: observer)
        }
        if let failure = observer.failure { throw failure }
        if outcome.wasStopped {
            stopped(job, observer: observer, logger: logger)
            return
        }
        let modelData = outcome.model.safetensors()
        try DataFolder.writeAtomically(modelData, to: folder.modelFile(jobId: job.id))
        let last = outcome.history.last
        func number(_ value: Double?) -> JSONValue { value.map { JSONValue($0) } ?? .null }
        let result: JSONValue = [
            "train_loss": number(last?.trainLoss),
            "d_loss": number(last?.discriminatorLoss), "g_loss": number(last?.generatorLoss),
            "d_real": number(last?.meanRealScore), "d_fake": number(last?.meanFakeScore),
            "parameters": JSONValue(outcome.model.parameterCount),
            "generator_parameters": JSONValue(outcome.model.generator.parameterCount),
            "discriminator_parameters": JSONValue(outcome.model.discriminator.parameterCount),
            "model_bytes": JSONValue(modelData.count),
            "seconds": JSONValue(Date().timeIntervalSince(started)),
        ]
        finish(job, .succeeded, code: nil, message: nil, result: result.encodedString())
        logger.info("GAN job succeeded", metadata: ["d_real": "\(last?.meanRealScore ?? .nan)", "d_fake": "\(last?.meanFakeScore ?? .nan)"])
    }

    /// Reads the stored spec, loads and splits its data.
    private func prepare(_ job: JobRecord) throws -> (JobSpec, PreparedData) {
        let spec = try JobSpec.parse(Data(job.spec.utf8))
        let dataset = try loadDataset(spec.dataset)
        func holdOut(_ holdOut: HoldOut) throws -> TabularDataset? {
            guard case .dataset(let id) = holdOut else { return nil }
            return try loadDataset(.uploaded(id: id))
        }
        let resolved = try spec.resolved(for: DatasetSummary(dataset))
        let data = PreparedData(spec: resolved, dataset: dataset, validationDataset: try holdOut(spec.validation),
                                testDataset: try holdOut(spec.test))
        return (resolved, data)
    }

    /// The weights of the spec's `init.from_job`, read from that job's saved model.
    private func weightTransfer(for spec: JobSpec) throws -> WeightTransfer? {
        guard let initialization = spec.initialization else { return nil }
        let source = try savedModel(of: initialization.fromJob, for: "init.from_job")
        return WeightTransfer(source: source.network, freeze: initialization.freeze)
    }

    /// Another job's saved model (a transfer source, a teacher).
    private func savedModel(of jobId: String, for field: String) throws -> TrainedModel {
        guard let data = FileManager.default.contents(atPath: folder.modelFile(jobId: jobId).path) else {
            throw TrainingError.invalidSpec("\(field): the model of \(jobId) is gone (was the job deleted?)")
        }
        return try TrainedModel.load(data)
    }

    private func loadDataset(_ source: DatasetSource) throws -> TabularDataset {
        switch source {
        case .builtin(let kind, let options): return kind.generate(options)
        case .uploaded(let id):
            guard let record = try datasets.dataset(id: id) else {
                throw TrainingError.invalidSpec("dataset \(id) no longer exists")
            }
            return try folder.load(record)
        case .named(let name):
            // Names are pinned to an id at submission; only a job stored before that, and so before
            // tenants, has one left: its dataset is the default tenant's.
            guard let record = try datasets.listDatasets(tenant: Tenant.default).first(where: { $0.name == name }) else {
                throw TrainingError.invalidSpec("no dataset named \(name)")
            }
            return try folder.load(record)
        }
    }

    /// Records the job's end and then, only once the store holds it, tells the event stream and the
    /// webhooks: no client hears `done` of a job the store still has running.
    func finish(_ job: JobRecord, _ status: JobStatus, code: String?, message: String?, result: String? = nil,
                        bestEpoch: Int? = nil, stoppedEarly: Bool = false) {
        let recorded = persist("the end (\(status.rawValue)) of job \(job.id)") {
            try jobs.finishJob(id: job.id, status: status, errorCode: code, errorMessage: message, result: result,
                               bestEpoch: bestEpoch, stoppedEarly: stoppedEarly)
        }
        guard recorded else { return }
        // The row no longer points at them: a finished job needs no checkpoint.
        folder.removeCheckpoints(ofJob: job.id)
        if status == .failed { logger.warning("job failed: \(message ?? "")", metadata: ["job": "\(job.id)"]) }
        if let message, status == .failed { events.publish(.log(jobId: job.id, message: message)) }
        events.publish(.done(jobId: job.id, status: status))
    }
}

/// Reports each epoch to the store and the event hub, and relays stop requests to the trainer.
private final class Observer: TrainingObserver, @unchecked Sendable {
    let job: JobRecord
    let epochs: Int
    let jobs: any JobRepository
    let events: JobEventHub
    let folder: DataFolder
    let stopCheck: @Sendable () -> StopReason?
    let logger: Logger
    private(set) var stopReason: StopReason?
    /// Set when an epoch could not be saved: the run stops and the job fails or is retried.
    private(set) var failure: StorageFailure?
    private var lastDatabaseCheck = Date()
    private var firstBatchLogged = false

    init(job: JobRecord, spec: JobSpec, jobs: any JobRepository, events: JobEventHub, folder: DataFolder,
         stopCheck: @escaping @Sendable () -> StopReason?, logger: Logger) {
        self.job = job
        self.epochs = spec.plannedEpochs
        self.jobs = jobs
        self.events = events
        self.folder = folder
        self.stopCheck = stopCheck
        self.logger = logger
    }

    func shouldStop() -> Bool {
        if failure != nil { return true }
        if let reason = stopCheck() {
            stopReason = reason
            return true
        }
        // Another process (or a request this process missed) may have asked to cancel: look at
        // the store now and then, not every batch.
        if Date().timeIntervalSince(lastDatabaseCheck) > 0.5 {
            lastDatabaseCheck = Date()
            if (try? jobs.isCancelRequested(id: job.id)) == true {
                stopReason = .cancelled
                return true
            }
        }
        return false
    }

    func epochDidFinish(_ metrics: EpochMetrics) {
        record(metrics, checkpointEpoch: nil)
    }

    /// On the job's log: the time from `POST /v1/jobs` (or the retry) to its first trained batch.
    func firstBatchDidFinish() {
        guard !firstBatchLogged else { return }  // fine-tuning and distillation train again
        firstBatchLogged = true
        let milliseconds = Int((Date().timeIntervalSince(job.createdAt) * 1000).rounded())
        let message = job.attempt == 1 ? "first batch trained \(milliseconds) ms after submission"
                                        : "first batch of attempt \(job.attempt) trained"
        logger.info("\(message)")
        events.publish(.log(jobId: job.id, message: message))
    }

    /// The checkpoint file first (temp file, fsync, rename), then the metrics row and the pointer to
    /// the file in one transaction, then the older checkpoints go: whatever instant the process dies,
    /// the row names a complete file and the metrics hold exactly the epochs it contains.
    func epochDidFinish(_ metrics: EpochMetrics, checkpoint: () -> Data) {
        do {
            try DataFolder.writeAtomically(checkpoint(), to: folder.checkpointFile(jobId: job.id, epoch: metrics.epoch))
        } catch {
            failure = StorageFailure(message: "could not write the checkpoint of epoch \(metrics.epoch): \(error.localizedDescription)")
            return
        }
        if record(metrics, checkpointEpoch: metrics.epoch) {
            folder.removeCheckpoints(ofJob: job.id, keeping: metrics.epoch)
        }
    }

    @discardableResult
    private func record(_ metrics: EpochMetrics, checkpointEpoch: Int?) -> Bool {
        let row = MetricsRow(
            jobId: job.id, epoch: metrics.epoch, trainLoss: metrics.trainLoss, trainAccuracy: metrics.trainAccuracy,
            valLoss: metrics.validationLoss, valAccuracy: metrics.validationAccuracy, lr: metrics.learningRate,
            gradNorm: metrics.gradientNorm, penalty: metrics.penalty, sparsity: metrics.sparsity, seconds: metrics.seconds,
            samplesPerSecond: metrics.samplesPerSecond, dLoss: metrics.discriminatorLoss, gLoss: metrics.generatorLoss,
            dReal: metrics.meanRealScore, dFake: metrics.meanFakeScore,
            valClassRecall: metrics.validationClassRecall.map { JSONValue.array($0.map { $0.map { JSONValue($0) } ?? .null }).encodedString() },
            valMacroF1: metrics.validationMacroF1)
        do {
            try jobs.recordEpoch(row, progress: min(1, Double(metrics.epoch) / Double(epochs)), latest: metrics.latestJSON.encodedString(),
                                 checkpointEpoch: checkpointEpoch)
        } catch {
            logger.error("could not record epoch \(metrics.epoch): \(StoreFailureText.of(error))")
            failure = StorageFailure(message: "could not record epoch \(metrics.epoch) in the database: \(StoreFailureText.of(error))")
            return false
        }
        events.publish(.epoch(jobId: job.id, metrics: metrics, epochs: epochs))
        return true
    }
}

/// The data folder or the database could not take what a job produced (disk full, unwritable folder).
struct StorageFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

extension EpochMetrics {
    /// The `latest` object of `GET /v1/jobs/{id}`.
    public var latestJSON: JSONValue {
        withGANFields(["train_loss": JSONValue(trainLoss), "train_accuracy": trainAccuracy.map { JSONValue($0) } ?? .null,
                       "val_loss": validationLoss.map { JSONValue($0) } ?? .null, "val_accuracy": validationAccuracy.map { JSONValue($0) } ?? .null,
                       "lr": JSONValue(learningRate), "samples_per_second": JSONValue(samplesPerSecond)])
    }

    /// One element of `GET /v1/jobs/{id}/metrics`.
    public var rowJSON: JSONValue {
        withGANFields(["epoch": JSONValue(epoch), "train_loss": JSONValue(trainLoss), "train_accuracy": trainAccuracy.map { JSONValue($0) } ?? .null,
                       "val_loss": validationLoss.map { JSONValue($0) } ?? .null, "val_accuracy": validationAccuracy.map { JSONValue($0) } ?? .null,
                       "lr": JSONValue(learningRate), "grad_norm": JSONValue(gradientNorm), "penalty": JSONValue(penalty),
                       "sparsity": JSONValue(sparsity), "seconds": JSONValue(seconds), "samples_per_second": JSONValue(samplesPerSecond)])
    }

    /// A GAN job's `d_loss`, `g_loss`, `d_real` (mean D(x)) and `d_fake` (mean D(G(z))) beside the
    /// common fields; a supervised job's rows are unchanged.
    private func withGANFields(_ fields: [String: JSONValue]) -> JSONValue {
        var fields = fields
        for (key, value) in [("d_loss", discriminatorLoss), ("g_loss", generatorLoss), ("d_real", meanRealScore), ("d_fake", meanFakeScore),
                             ("val_macro_f1", validationMacroF1)] {
            if let value { fields[key] = JSONValue(value) }
        }
        if let recall = validationClassRecall { fields["val_class_recall"] = .array(recall.map { $0.map { JSONValue($0) } ?? .null }) }
        return .object(fields)
    }
}
