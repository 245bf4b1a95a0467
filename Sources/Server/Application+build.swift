import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
import JobStore
import Logging
import NIOCore
import ServiceLifecycle
import Workers

/// The composition root: opens the stores (`Stores`: SQLite, or a fleet's PostgreSQL), creates the data folder, wires the stores, the
/// worker pool, the event hub and the metrics into the routes. `descent serve` and the tests
/// both call it.
public func buildApplication(_ configuration: ServerConfiguration) async throws -> some ApplicationProtocol {
    var logger = Logger(label: "descent")
    logger.logLevel = configuration.logLevel

    let folder = DataFolder(root: configuration.dataDirectory)
    try folder.createFolders()
    // On a full disk the database may need the reserve's room to open (its WAL): the operator must be able to start the
    // server and delete things. Put back once it is open, if there is room.
    folder.releaseReserve()
    let stores = try Stores.open(configuration)
    folder.restoreReserve()
    logger.info(configuration.requiresAuthentication ? "auth on: /v1 requests need Authorization: Bearer <token>" : "auth off: every request acts for the default tenant")
    if configuration.requiresAuthentication, try stores.tokens.listTokens().allSatisfy(\.isRevoked) {
        logger.warning("auth is on and there is no valid token: every /v1 request will be refused. Make one with descent token create --tenant NAME")
    }
    // Leftovers of a crash (see `removeLeftovers`); older than an upload may take, so nothing another node of a fleet is writing.
    let leftovers = folder.removeLeftovers(
        olderThan: max(1200, Double(configuration.uploadTimeout.components.seconds) + 300),
        datasetExists: { try stores.datasets.dataset(id: $0) != nil },
        jobState: { try stores.jobs.job(id: $0)?.status })
    if !leftovers.isEmpty { logger.notice("removed \(leftovers.count) files a crash left behind: \(leftovers.prefix(10).joined(separator: ", "))") }
    let events = JobEventHub()
    if let bus = stores.eventBus {
        // A fleet: this server's job events go to the others, theirs come to this one's streams.
        try events.relay(through: bus, nodeId: configuration.resolvedNodeId)
        logger.info("fleet node \(configuration.resolvedNodeId): PostgreSQL queue, leases of \(configuration.leaseSeconds) s")
    }
    // What `descent worker` ranks open: the SQLite file or the fleet's PostgreSQL (nil: in memory, which they cannot share).
    let sharedDatabase: String? = switch configuration.databasePath {
    case ":memory:": nil
    case let url? where PostgresStore.isPostgresURL(url): url
    case let path?: URL(fileURLWithPath: path).path
    case nil: configuration.dataDirectory.appendingPathComponent("descent.sqlite").path
    }
    let metrics = ServerMetrics(jobs: stores.jobs, events: events, databasePath: stores.databasePath)
    WebhookNotifier(jobs: stores.jobs, deliveries: stores.deliveries, logger: logger, retryDelays: configuration.webhookRetryDelays,
                    timeout: configuration.webhookTimeout, allowsPrivateTargets: configuration.webhookAllowsPrivateTargets)
        .attach(to: events)
    let pool = WorkerPool(
        configuration: WorkerConfiguration(workerCount: configuration.workerCount, blasThreads: configuration.blasThreads,
                                           dataDirectory: configuration.dataDirectory, heartbeatInterval: stores.heartbeatInterval,
                                           processes: WorkerProcessConfiguration(
                                               isolation: configuration.isolation, memoryLimit: configuration.jobMemoryLimit,
                                               jobStallTimeout: configuration.jobStallTimeout, mpirun: configuration.mpirun, databasePath: sharedDatabase,
                                                                 nodeId: stores.eventBus == nil ? nil : configuration.resolvedNodeId,
                                                                 stallTimeout: configuration.mpiStallTimeout)),
        jobs: stores.jobs, datasets: stores.datasets, events: events, logger: logger)

    if stores.eventBus != nil, configuration.runsWorkers {
        // A fleet: a job queued through another server wakes an idle worker here, not at its next poll.
        let everyJob = events.subscribe(jobId: nil)
        Task {
            for await event in everyJob {
                if case .status(_, .queued) = event { pool.jobWasQueued() }
            }
        }
    }

    let router = Router(context: AppRequestContext.self)
    // Outermost, so its headers and its error envelope cover every answer, the other middlewares' included.
    let wildcard = ["0.0.0.0", "::", "[::]"].contains(configuration.host)
    router.add(middleware: SecurityMiddleware(checksBrowserOrigin: !configuration.requiresAuthentication,
                                              allowedHosts: Set(((wildcard ? [] : [configuration.host]) + configuration.allowedHosts).map { $0.lowercased() }),
                                              servesTLS: configuration.tls != nil, logger: logger))
    router.add(middleware: HTTPMetricsMiddleware(metrics: metrics))
    router.add(middleware: StaticFilesMiddleware(files: FileMiddleware(publicFolder(), searchForIndexHtml: true, logger: logger)))
    // Open: the status page (static files), /healthz, /metrics, /openapi.yaml.
    ServiceController(metrics: metrics).addRoutes(to: router)
    // Everything under /v1 acts for a tenant: the bearer token's (auth on) or the default one.
    let v1 = router.group("v1").add(middleware: TenantMiddleware(tokens: configuration.requiresAuthentication ? stores.tokens : nil))
    let specBody = JSONBodyLimits(maxBytes: min(configuration.maxSpecBytes, configuration.maxJSONBytes), maxDepth: configuration.maxJSONDepth,
                                  timeout: configuration.bodyTimeout, what: "the JSON body (--max-spec-bytes)")
    let otherJSONBody = JSONBodyLimits(maxBytes: configuration.maxJSONBytes, maxDepth: configuration.maxJSONDepth, timeout: configuration.bodyTimeout)
    let tenantLimits = TenantLimits(activeJobs: configuration.maxQueuedPerTenant, mpiProcesses: configuration.maxMPIProcessesPerTenant)
    let jobLimits = JobLimits(maxEpochSamples: configuration.maxEpochSamples, maxModelParameters: configuration.maxModelParameters,
                              maxMPIProcesses: configuration.maxMPIProcesses, mpiHosts: configuration.mpiHosts)
    DatasetController(datasets: stores.datasets, folder: folder, maxUploadBytes: configuration.maxUploadBytes,
                      maxFeatures: configuration.maxFeatures, uploadTimeout: configuration.uploadTimeout,
                      quota: DatasetQuota(maxDatasets: configuration.maxDatasetsPerTenant, maxBytes: configuration.maxDatasetBytesPerTenant),
                      logger: logger)
        .addRoutes(to: v1.group("datasets"))
    JobController(jobs: stores.jobs, datasets: stores.datasets, deliveries: stores.deliveries, folder: folder, pool: pool, events: events,
                  specBody: specBody, predictionBody: otherJSONBody, limits: jobLimits, tenantLimits: tenantLimits)
        .addRoutes(to: v1.group("jobs"))
    TenantEventController(jobs: stores.jobs, events: events).addRoutes(to: v1.group("events"))
    StudyController(studies: stores.studies, jobs: stores.jobs, datasets: stores.datasets, folder: folder, pool: pool, events: events,
                    specBody: specBody, limits: jobLimits, tenantLimits: tenantLimits)
        .addRoutes(to: v1.group("studies"))

    var services: [any Service] = []
    if configuration.runsWorkers { services.append(WorkerService(pool: pool)) }
    // A connection idle for this long, before or in the middle of a request, is closed.
    let http1 = HTTPServerBuilder.http1(configuration: .init(idleTimeout: TimeAmount(configuration.idleTimeout)))
    return Application(
        router: router,
        server: try configuration.tls.map { try .tls(http1, tlsConfiguration: makeTLSConfiguration(certificateChain: $0.certificateChain, privateKey: $0.privateKey)) } ?? http1,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "descent",
                             availableConnectionsDelegate: configuration.maxConnections.map { .maximum($0, logger: logger) }),
        services: services,
        logger: logger)
}

/// The server side of TLS from PEM files (swift-nio-ssl's defaults: TLS 1.2 and up, its cipher list).
/// A file that is missing or not PEM stops the start with a message naming it.
func makeTLSConfiguration(certificateChain: String, privateKey: String) throws -> TLSConfiguration {
    let chain: [NIOSSLCertificate]
    do { chain = try NIOSSLCertificate.fromPEMFile(certificateChain) } catch {
        throw ServerStartError("--tls-cert \(certificateChain): not a readable PEM certificate chain (\(error))")
    }
    guard !chain.isEmpty else { throw ServerStartError("--tls-cert \(certificateChain): no certificate in the file") }
    let key: NIOSSLPrivateKey
    do { key = try NIOSSLPrivateKey(file: privateKey, format: .pem) } catch {
        throw ServerStartError("--tls-key \(privateKey): not a readable PEM private key (\(error))")
    }
    return TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
}

/// Why the server cannot start, in words for the operator.
public struct ServerStartError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
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
