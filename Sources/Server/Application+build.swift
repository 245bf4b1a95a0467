import Foundation
import Hummingbird
import JobStore
import Logging
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
    let events = JobEventHub()
    let metrics = ServerMetrics(jobs: database, events: events)
    WebhookNotifier(jobs: database, deliveries: database, logger: logger, retryDelays: configuration.webhookRetryDelays)
        .attach(to: events)
    let pool = WorkerPool(
        configuration: WorkerConfiguration(workerCount: configuration.workerCount, blasThreads: configuration.blasThreads,
                                           dataDirectory: configuration.dataDirectory),
        jobs: database, datasets: database, events: events, logger: logger)

    let router = Router()
    router.add(middleware: HTTPMetricsMiddleware(metrics: metrics))
    router.add(middleware: FileMiddleware(publicFolder(), searchForIndexHtml: true, logger: logger))
    ServiceController(metrics: metrics).addRoutes(to: router)
    DatasetController(datasets: database, folder: folder, maxUploadBytes: configuration.maxUploadBytes, logger: logger)
        .addRoutes(to: router.group("v1/datasets"))
    JobController(jobs: database, datasets: database, folder: folder, pool: pool, events: events,
                  maxJSONBytes: configuration.maxJSONBytes)
        .addRoutes(to: router.group("v1/jobs"))
    StudyController(studies: database, jobs: database, datasets: database, folder: folder, pool: pool,
                    maxJSONBytes: configuration.maxJSONBytes)
        .addRoutes(to: router.group("v1/studies"))

    var services: [any Service] = []
    if configuration.runsWorkers { services.append(WorkerService(pool: pool)) }
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "descent"),
        services: services,
        logger: logger)
}

/// The status page's folder, shipped as a resource of this module.
func publicFolder() -> String {
    Bundle.module.resourceURL!.appendingPathComponent("Public").path
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
