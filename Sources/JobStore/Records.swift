import Foundation
import GRDB

// Plain Codable records. Swift names are camelCase; the coding strategies map them to the
// snake_case columns of migrations/. Array properties are stored as JSON text by GRDB.
// Dates are stored to the millisecond, so records returned by the store are re-read from
// the database rather than echoed back.

public enum JobStatus: String, Codable, Sendable, CaseIterable {
    case queued, running, succeeded, failed, cancelled

    /// Whether the job reached a final state.
    public var isFinished: Bool {
        switch self {
        case .queued, .running: false
        case .succeeded, .failed, .cancelled: true
        }
    }
}

public struct JobRecord: Codable, Sendable, Equatable {
    public var id: String
    /// Who owns the job (`Tenant`); requests of other tenants never see it.
    public var tenant: String
    public var name: String?
    public var status: JobStatus
    public var priority: Int
    /// A dataset id (`ds_…`) or a built-in generator (`builtin:spirals`).
    public var datasetId: String
    /// JSON text of the full spec, defaults filled in.
    public var spec: String
    /// Starts at 0; each claim adds one.
    public var attempt: Int
    public var maxAttempts: Int
    /// Epochs finished.
    public var epoch: Int
    /// Epochs planned.
    public var epochs: Int
    /// 0…1.
    public var progress: Double
    /// JSON text of the latest metrics.
    public var latest: String?
    public var bestEpoch: Int?
    public var stoppedEarly: Bool
    public var errorCode: String?
    public var errorMessage: String?
    /// JSON text of the result.
    public var result: String?
    public var cancelRequested: Bool
    public var idempotencyKey: String?
    public var createdAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// The study that created the job (`st_…`); nil for a job submitted on its own, or once
    /// its study is deleted.
    public var studyId: String?
    /// JSON object text `{"<path>": value, …}`: the values the job's spec took from its study's
    /// parameters. Kept when the study is deleted.
    public var studyParameters: String?
    /// The epoch whose checkpoint file a resumed attempt starts from; nil without one.
    public var checkpointEpoch: Int?
    /// Attempts a graceful shutdown handed back to the queue (SIGTERM, a rolling deploy): not failures,
    /// so they do not count against `maxAttempts`.
    public var handedBack: Int

    /// The attempts that count against `maxAttempts`: every claim but those a shutdown handed back.
    public var countedAttempts: Int { attempt - handedBack }

    public init(
        id: String, tenant: String = Tenant.default, name: String? = nil, status: JobStatus = .queued, priority: Int = 0,
        datasetId: String, spec: String, attempt: Int = 0, maxAttempts: Int = 3,
        epoch: Int = 0, epochs: Int, progress: Double = 0, latest: String? = nil,
        bestEpoch: Int? = nil, stoppedEarly: Bool = false,
        errorCode: String? = nil, errorMessage: String? = nil, result: String? = nil,
        cancelRequested: Bool = false, idempotencyKey: String? = nil,
        createdAt: Date, startedAt: Date? = nil, finishedAt: Date? = nil,
        studyId: String? = nil, studyParameters: String? = nil, checkpointEpoch: Int? = nil, handedBack: Int = 0
    ) {
        self.id = id
        self.tenant = tenant
        self.name = name
        self.status = status
        self.priority = priority
        self.datasetId = datasetId
        self.spec = spec
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.epoch = epoch
        self.epochs = epochs
        self.progress = progress
        self.latest = latest
        self.bestEpoch = bestEpoch
        self.stoppedEarly = stoppedEarly
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.result = result
        self.cancelRequested = cancelRequested
        self.idempotencyKey = idempotencyKey
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.studyId = studyId
        self.studyParameters = studyParameters
        self.checkpointEpoch = checkpointEpoch
        self.handedBack = handedBack
    }
}

/// What a client asks for; the store fills in the id, status and timestamps.
public struct NewJob: Sendable {
    /// Who will own the job; an idempotency key is looked up among this tenant's jobs only.
    public var tenant: String
    public var name: String?
    public var priority: Int
    public var datasetId: String
    /// JSON text of the full spec, defaults filled in.
    public var spec: String
    public var epochs: Int
    public var maxAttempts: Int
    public var idempotencyKey: String?
    /// MPI ranks the job asks for (`distributed.processes`; 0 without MPI), counted against `TenantLimits.mpiProcesses`.
    public var mpiProcesses: Int

    public init(
        tenant: String = Tenant.default, name: String? = nil, priority: Int = 0, datasetId: String, spec: String,
        epochs: Int, maxAttempts: Int = 3, idempotencyKey: String? = nil, mpiProcesses: Int = 0
    ) {
        self.mpiProcesses = mpiProcesses
        self.tenant = tenant
        self.name = name
        self.priority = priority
        self.datasetId = datasetId
        self.spec = spec
        self.epochs = epochs
        self.maxAttempts = maxAttempts
        self.idempotencyKey = idempotencyKey
    }
}

/// One row per finished epoch of a job.
public struct MetricsRow: Codable, Sendable, Equatable {
    public var jobId: String
    /// 1-based.
    public var epoch: Int
    public var trainLoss: Double
    public var trainAccuracy: Double?
    public var valLoss: Double?
    public var valAccuracy: Double?
    public var lr: Double
    public var gradNorm: Double
    public var penalty: Double
    /// Fraction of weights exactly 0.
    public var sparsity: Double
    public var seconds: Double
    public var samplesPerSecond: Double
    /// GAN jobs only (NULL otherwise, migration 0003): the discriminator's loss, the generator's
    /// loss, mean D(x) on real samples and mean D(G(z)) on generated ones.
    public var dLoss: Double?
    public var gLoss: Double?
    public var dReal: Double?
    public var dFake: Double?
    /// Classification with a validation set (migration 0005): JSON text of the per-class recalls
    /// in class order, and the macro-averaged F1.
    public var valClassRecall: String?
    public var valMacroF1: Double?

    public init(
        jobId: String, epoch: Int, trainLoss: Double, trainAccuracy: Double? = nil,
        valLoss: Double? = nil, valAccuracy: Double? = nil, lr: Double, gradNorm: Double,
        penalty: Double = 0, sparsity: Double = 0, seconds: Double, samplesPerSecond: Double,
        dLoss: Double? = nil, gLoss: Double? = nil, dReal: Double? = nil, dFake: Double? = nil,
        valClassRecall: String? = nil, valMacroF1: Double? = nil
    ) {
        self.jobId = jobId
        self.epoch = epoch
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.valLoss = valLoss
        self.valAccuracy = valAccuracy
        self.lr = lr
        self.gradNorm = gradNorm
        self.penalty = penalty
        self.sparsity = sparsity
        self.seconds = seconds
        self.samplesPerSecond = samplesPerSecond
        self.dLoss = dLoss
        self.gLoss = gLoss
        self.dReal = dReal
        self.dFake = dFake
        self.valClassRecall = valClassRecall
        self.valMacroF1 = valMacroF1
    }
}

public struct DatasetRecord: Codable, Sendable, Equatable {
    public var id: String
    /// Who owns the dataset (`Tenant`); its name is looked up among this tenant's datasets only.
    public var tenant: String
    public var name: String
    /// "csv", "idx" or "npy".
    public var format: String
    public var rows: Int
    public var features: Int
    public var featureNames: [String]
    public var target: String?
    /// "classification" or "regression"; "unlabeled" for IDX or NPY data whose labels are still
    /// to be uploaded (`labels_of`).
    public var task: String
    public var classes: [String]?
    public var shape: [Int]
    /// The stored files' sizes (data and labels).
    public var bytes: Int
    /// Relative to the data folder's `datasets/`.
    public var fileName: String
    public var createdAt: Date
    /// IDX and NPY: the labels file of a second upload (`labels_of`), relative to `datasets/`.
    public var labelsFileName: String?

    /// Whether the data still waits for its labels (no job can train on it yet).
    public var isUnlabeled: Bool { task == Self.unlabeledTask }

    /// Throws unless the dataset waits for its labels file (both stores' `attachLabels`, in their transaction).
    func ensureWaitingForLabels() throws {
        guard isUnlabeled else {
            throw JobStoreError.wrongState(labelsFileName == nil
                ? "dataset \(id) is not waiting for labels: its targets came with its data"
                : "dataset \(id) already has labels")
        }
    }
    public static let unlabeledTask = "unlabeled"

    public init(
        id: String, tenant: String = Tenant.default, name: String, format: String, rows: Int, features: Int,
        featureNames: [String], target: String?, task: String, classes: [String]?,
        shape: [Int], bytes: Int, fileName: String, createdAt: Date, labelsFileName: String? = nil
    ) {
        self.id = id
        self.tenant = tenant
        self.name = name
        self.format = format
        self.rows = rows
        self.features = features
        self.featureNames = featureNames
        self.target = target
        self.task = task
        self.classes = classes
        self.shape = shape
        self.bytes = bytes
        self.fileName = fileName
        self.createdAt = createdAt
        self.labelsFileName = labelsFileName
    }
}

/// A comparison or hyperparameter search: one request that queued one job per combination of
/// parameter values. Its jobs point back to it (`JobRecord.studyId`).
public struct StudyRecord: Codable, Sendable, Equatable {
    /// `st_…`.
    public var id: String
    /// Who owns the study and its jobs (`Tenant`).
    public var tenant: String
    public var name: String
    /// JSON object text of the request (base spec, search, parameters, objective), defaults filled in.
    public var spec: String
    /// "grid" or "random".
    public var strategy: String
    /// What ranks the jobs: "val_loss", "val_accuracy", "train_loss", "train_accuracy" or "test_accuracy".
    public var objectiveMetric: String
    /// "min" or "max".
    public var objectiveMode: String
    public var createdAt: Date

    public init(
        id: String = makeIdentifier(prefix: "st_"), tenant: String = Tenant.default, name: String, spec: String, strategy: String,
        objectiveMetric: String, objectiveMode: String, createdAt: Date = Date()
    ) {
        self.id = id
        self.tenant = tenant
        self.name = name
        self.spec = spec
        self.strategy = strategy
        self.objectiveMetric = objectiveMetric
        self.objectiveMode = objectiveMode
        self.createdAt = createdAt
    }
}

public enum JobStoreError: Error, Equatable {
    /// The job is not in a state that allows the operation (HTTP 409).
    case wrongState(String)
    /// A queued or running job uses the dataset (HTTP 409).
    case datasetInUse(String)
    /// A list cursor that this store did not produce (HTTP 400).
    case invalidCursor(String)
    /// The Migrations resource folder is missing or empty: a packaging error.
    case migrationsNotFound(String)
    /// Queuing `adding` more jobs would take the tenant past `limit` queued and running jobs (HTTP 429).
    case tooManyActiveJobs(tenant: String, active: Int, adding: Int, limit: Int)
    /// The MPI ranks of the tenant's queued and running jobs would pass the limit (HTTP 429).
    case tooManyMPIProcesses(tenant: String, active: Int, adding: Int, limit: Int)
    /// The tenant already keeps `limit` datasets (HTTP 429).
    case tooManyDatasets(tenant: String, limit: Int)
    /// Storing `adding` more bytes would take the tenant's datasets past `limit` bytes (HTTP 413).
    case datasetBytesExceeded(tenant: String, stored: Int, adding: Int, limit: Int)
    /// Not a tenant name: 1 to 64 letters, digits, `-` and `_`.
    case invalidTenantName(String)
}

/// Who owns datasets, jobs and studies. With auth on, a request acts for the tenant of its token;
/// with auth off, and for everything stored before tenants existed, for `default`.
public enum Tenant {
    public static let `default` = "default"

    /// 1 to 64 ASCII letters, digits, `-` and `_` (the schema checks the same).
    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count) && name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
        }
    }
}

/// How much data a tenant may keep: checked in the transaction that stores a dataset or its labels.
public struct DatasetQuota: Sendable, Equatable {
    public var maxDatasets: Int
    /// The stored files of all the tenant's datasets (data and labels), in bytes.
    public var maxBytes: Int

    public init(maxDatasets: Int, maxBytes: Int) {
        self.maxDatasets = maxDatasets
        self.maxBytes = maxBytes
    }
}

/// An access token, as stored: its SHA-256, never the token itself (`AccessToken`).
public struct TokenRecord: Codable, Sendable, Equatable {
    /// `tok_…`: what `descent token list` shows and `descent token revoke` takes.
    public var id: String
    /// The tenant requests with this token act for.
    public var tenant: String
    /// Lowercase hex SHA-256 of the token.
    public var tokenHash: String
    public var createdAt: Date
    /// Nil while the token is valid.
    public var revokedAt: Date?

    public var isRevoked: Bool { revokedAt != nil }

    public init(id: String = makeIdentifier(prefix: "tok_"), tenant: String, tokenHash: String, createdAt: Date = Date(), revokedAt: Date? = nil) {
        self.id = id
        self.tenant = tenant
        self.tokenHash = tokenHash
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}

/// `prefix` followed by 20 random lowercase letters and digits, e.g. `job_4k2…`.
public func makeIdentifier(prefix: String) -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    return prefix + String((0..<20).map { _ in alphabet.randomElement()! })
}

/// Whether `text` has the shape `makeIdentifier(prefix:)` gives: the prefix, then 20 lowercase ASCII
/// letters and digits. Ids from requests are checked with it before any lookup, so no other text
/// (`..`, slashes, NUL bytes) reaches a query or a file name.
public func isWellFormedIdentifier(_ text: String, prefix: String) -> Bool {
    let bytes = Array(text.utf8)
    let prefixBytes = Array(prefix.utf8)
    guard bytes.count == prefixBytes.count + 20, bytes.starts(with: prefixBytes) else { return false }
    return bytes.dropFirst(prefixBytes.count).allSatisfy { byte in
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}

// MARK: - GRDB

extension JobRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "jobs"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
}

extension MetricsRow: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "metrics"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
}

extension StudyRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "studies"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
}

extension DatasetRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "datasets"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
}

extension TokenRecord: FetchableRecord, PersistableRecord {
    public static let databaseTableName = "tokens"
    public static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    public static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase
}

/// What a tenant's queued and running jobs may hold together, checked in the transaction that queues
/// new ones (so two requests at once cannot both slip under a limit). Nil: no limit.
public struct TenantLimits: Sendable, Equatable {
    /// Queued and running jobs (`--max-queued-per-tenant`).
    public var activeJobs: Int?
    /// MPI ranks their `distributed.processes` ask for (`--max-mpi-processes-per-tenant`).
    public var mpiProcesses: Int?

    public init(activeJobs: Int? = nil, mpiProcesses: Int? = nil) {
        self.activeJobs = activeJobs
        self.mpiProcesses = mpiProcesses
    }
}
