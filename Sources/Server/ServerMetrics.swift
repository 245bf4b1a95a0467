import Foundation
import Hummingbird
import JobStore
import Prometheus
import Synchronization
import Workers

/// The Prometheus metrics of `GET /metrics`: jobs by state, queue depth, job durations, epochs
/// and samples trained, samples/s of running jobs, HTTP requests by route and status with their
/// latency, and the database's size. Kept in a registry of our own (not the global MetricsSystem)
/// so each application — and each test — has its own.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let jobs: any JobRepository
    private let jobDurations: DurationHistogram
    private let throughput = Mutex<[String: Gauge]>([:])
    private let epochsTrained: Counter
    private let samplesTrained: Counter
    /// The SQLite file and its WAL (nil for an in-memory database).
    private let databaseFiles: [URL]

    static let latencyBuckets: [Duration] = [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                             .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5)]

    init(jobs: any JobRepository, events: JobEventHub, databasePath: String? = nil) {
        self.jobs = jobs
        databaseFiles = databasePath.map { path in [path, path + "-wal"].map { URL(fileURLWithPath: $0) } } ?? []
        epochsTrained = registry.makeCounter(descriptor: Self.descriptor("epochs_trained", unit: "total", help: "Training epochs finished, all jobs"))
        samplesTrained = registry.makeCounter(descriptor: Self.descriptor("samples_trained", unit: "total", help: "Training samples processed, all jobs"))
        jobDurations = registry.makeDurationHistogram(
            descriptor: Self.descriptor("job_duration", unit: "seconds", help: "Wall time of finished jobs, from start to finish"),
            buckets: [.seconds(1), .seconds(5), .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(3600), .seconds(14400)])
        events.observe { [weak self] event in self?.record(event) }
    }

    private func record(_ event: JobEvent) {
        switch event {
        case .epoch(let jobId, let metrics, _):
            let gauge = throughput.withLock { gauges in
                if let gauge = gauges[jobId] { return gauge }
                let gauge = registry.makeGauge(
                    descriptor: Self.descriptor("job_samples", unit: "per_second", help: "Training throughput of a running job, last epoch"),
                    labels: [("job", jobId)])
                gauges[jobId] = gauge
                return gauge
            }
            gauge.set(metrics.samplesPerSecond)
            epochsTrained.increment()
            // samples/s × seconds is the epoch's sample count (the rate was computed from it).
            samplesTrained.increment(by: Int64((metrics.samplesPerSecond * metrics.seconds).rounded()))
        case .done(let jobId, _):
            if let gauge = throughput.withLock({ $0.removeValue(forKey: jobId) }) { registry.unregisterGauge(gauge) }
            if let job = try? jobs.job(id: jobId), let started = job.startedAt, let finished = job.finishedAt {
                jobDurations.recordNanoseconds(Int64(finished.timeIntervalSince(started) * 1e9))
            }
        default: break
        }
    }

    func countRequest(route: String, method: String, status: Int, duration: Duration) {
        registry.makeCounter(
            descriptor: Self.descriptor("http_requests", unit: "total", help: "HTTP requests by route, method and status"),
            labels: [("route", route), ("method", method), ("status", String(status))]
        ).increment()
        registry.makeDurationHistogram(
            descriptor: Self.descriptor("http_request_duration", unit: "seconds", help: "Time to the response head, by route and method"),
            labels: [("route", route), ("method", method)], buckets: Self.latencyBuckets
        ).record(duration)
    }

    private static func descriptor(_ name: String, unit: String = "", help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "descent", metricName: name, unitName: unit, helpText: help)
    }

    /// The text format, with job counts read from the store at scrape time.
    func exposition() -> String {
        if let counts = try? jobs.countJobsByStatus() {
            for status in JobStatus.allCases {
                registry.makeGauge(descriptor: Self.descriptor("jobs", help: "Jobs by status"), labels: [("status", status.rawValue)])
                    .set(Double(counts[status] ?? 0))
            }
            registry.makeGauge(descriptor: Self.descriptor("queue_depth", help: "Jobs waiting for a worker"))
                .set(Double(counts[.queued] ?? 0))
        }
        if !databaseFiles.isEmpty {
            let bytes = databaseFiles.reduce(0) { total, file in
                total + ((try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? 0)
            }
            registry.makeGauge(descriptor: Self.descriptor("database", unit: "bytes", help: "Size of the SQLite database and its WAL"))
                .set(Double(bytes))
        }
        return registry.emitToString()
    }
}

/// Counts every request by its route pattern (not the raw path, which would explode the labels).
struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        func count(_ status: Int) {
            metrics.countRequest(route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: status,
                                 duration: ContinuousClock.now - start)
        }
        do {
            let response = try await next(request, context)
            count(response.status.code)
            return response
        } catch let error as any HTTPResponseError {
            count(error.status.code)
            throw error
        } catch {
            count(500)
            throw error
        }
    }
}
