import Foundation
import Hummingbird
import JobStore
import Logging
import NIOCore
import ServiceLifecycle
import Workers

/// The composition root: opens the database, creates the data folder, wires the stores, the
/// worker pool, the event hub and the metrics into the routes. `descent serve` and the tests
/// both call it.
public func buildApplication(_ configuration: ServerConfiguration) async throws -> some ApplicationProtocol {
    var logger = Logger(label: "descent")
    logger.logLevel = configuration.logLevel

    let folder = DataFolder(root: configuration.dataDirectory)
    try folder.createFolders()
    let database: AppDatabase = switch configuration.databasePath {
    case ":memory:": try AppDatabase.inMemory()
    case let path?: try AppDatabase.open(path: path)
    case nil: try AppDatabase.open(path: configuration.dataDirectory.appendingPathComponent("descent.sqlite").path)
    }
    logger.info(configuration.requiresAuthentication ? "auth on: /v1 requests need Authorization: Bearer <token>" : "auth off: every request acts for the default tenant")
    if configuration.requiresAuthentication, try database.listTokens().allSatisfy(\.isRevoked) {
        logger.warning("auth is on and there is no valid token: every /v1 request will be refused. Make one with descent token create --tenant NAME")
    }
    let events = JobEventHub()
    let databasePath: String? = switch configuration.databasePath {
    case ":memory:": nil
    case let path?: URL(fileURLWithPath: path).path
    case nil: configuration.dataDirectory.appendingPathComponent("descent.sqlite").path
    }
    let metrics = ServerMetrics(jobs: database, events: events, databasePath: databasePath)
    WebhookNotifier(jobs: database, deliveries: database, logger: logger, retryDelays: configuration.webhookRetryDelays,
                    timeout: configuration.webhookTimeout)
        .attach(to: events)
    let pool = WorkerPool(
        configuration: WorkerConfiguration(workerCount: configuration.workerCount, blasThreads: configuration.blasThreads,
                                           dataDirectory: configuration.dataDirectory,
                                           mpi: MPIConfiguration(mpirun: configuration.mpirun, databasePath: databasePath,
                                                                 stallTimeout: configuration.mpiStallTimeout)),
        jobs: database, datasets: database, events: events, logger: logger)

    let router = Router(context: AppRequestContext.self)
    router.add(middleware: HTTPMetricsMiddleware(metrics: metrics))
    router.add(middleware: StaticFilesMiddleware(files: FileMiddleware(publicFolder(), searchForIndexHtml: true, logger: logger)))
    // Open: the status page (static files), /healthz, /metrics, /openapi.yaml.
    ServiceController(metrics: metrics).addRoutes(to: router)
    // Everything under /v1 acts for a tenant: the bearer token's (auth on) or the default one.
    let v1 = router.group("v1").add(middleware: TenantMiddleware(tokens: configuration.requiresAuthentication ? database : nil))
    let specBody = JSONBodyLimits(maxBytes: min(configuration.maxSpecBytes, configuration.maxJSONBytes), maxDepth: configuration.maxJSONDepth,
                                  timeout: configuration.bodyTimeout, what: "the JSON body (--max-spec-bytes)")
    let otherJSONBody = JSONBodyLimits(maxBytes: configuration.maxJSONBytes, maxDepth: configuration.maxJSONDepth, timeout: configuration.bodyTimeout)
    let jobLimits = JobLimits(maxEpochSamples: configuration.maxEpochSamples, maxModelParameters: configuration.maxModelParameters)
    DatasetController(datasets: database, folder: folder, maxUploadBytes: configuration.maxUploadBytes,
                      quota: DatasetQuota(maxDatasets: configuration.maxDatasetsPerTenant, maxBytes: configuration.maxDatasetBytesPerTenant),
                      logger: logger)
        .addRoutes(to: v1.group("datasets"))
    JobController(jobs: database, datasets: database, deliveries: database, folder: folder, pool: pool, events: events,
                  specBody: specBody, predictionBody: otherJSONBody, limits: jobLimits, maxQueuedPerTenant: configuration.maxQueuedPerTenant)
        .addRoutes(to: v1.group("jobs"))
    TenantEventController(jobs: database, events: events).addRoutes(to: v1.group("events"))
    StudyController(studies: database, jobs: database, datasets: database, folder: folder, pool: pool, events: events,
                    specBody: specBody, limits: jobLimits, maxQueuedPerTenant: configuration.maxQueuedPerTenant)
        .addRoutes(to: v1.group("studies"))

    var services: [any Service] = []
    if configuration.runsWorkers { services.append(WorkerService(pool: pool)) }
    return Application(
        router: router,
        // A connection idle for this long, before or in the middle of a request, is closed.
        server: .http1(configuration: .init(idleTimeout: TimeAmount(configuration.idleTimeout))),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "descent"),
        services: services,
        logger: logger)
}

/// The status page's folder, shipped as a resource of this module.
func publicFolder() -> String {
    Bundle.module.resourceURL!.appendingPathComponent("Public").path
}

/// Serves the status page's files, and keeps the file middleware out of the way of `/v1`: it
/// answers any path with `..` a bare 400, where an API path with a hostile id must be the API's 404.
/// A file path that could climb out of the folder (`..`, a NUL byte, bad percent-encoding) is a 404.
struct StaticFilesMiddleware<Files: RouterMiddleware>: RouterMiddleware where Files.Context == AppRequestContext {
    typealias Context = AppRequestContext
    let files: Files

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        if path == "/v1" || path.hasPrefix("/v1/") { return try await next(request, context) }
        guard let decoded = path.removingPercentEncoding, !decoded.contains(".."), !decoded.contains("\0") else {
            throw APIError(status: .notFound, code: "not_found", message: "no file at \(path)")
        }
        return try await files.handle(request, context: context, next: next)
    }
}

/// Runs the worker pool for the lifetime of the application and stops it gracefully
/// (running jobs go back to the queue) on SIGTERM/SIGINT.
struct WorkerService: Service {
    let pool: WorkerPool

    func run() async throws {
        try pool.start()
        try? await gracefulShutdown()
        await pool.shutdown()
    }
}
