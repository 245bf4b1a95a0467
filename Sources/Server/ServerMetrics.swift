import Foundation
import Hummingbird
import JobStore
import Prometheus
import Synchronization
import Workers

/// The Prometheus metrics of `GET /metrics`: jobs by state, queue depth, job durations, HTTP
/// requests by route and status, samples/s of running jobs. Kept in a registry of our own (not
/// the global MetricsSystem) so each application — and each test — has its own.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let jobs: any JobRepository
    private let jobDurations: DurationHistogram
    private let throughput = Mutex<[String: Gauge]>([:])

    init(jobs: any JobRepository, events: JobEventHub) {
        self.jobs = jobs
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
        case .done(let jobId, _):
            if let gauge = throughput.withLock({ $0.removeValue(forKey: jobId) }) { registry.unregisterGauge(gauge) }
            if let job = try? jobs.job(id: jobId), let started = job.startedAt, let finished = job.finishedAt {
                jobDurations.recordNanoseconds(Int64(finished.timeIntervalSince(started) * 1e9))
            }
        default: break
        }
    }

    func countRequest(route: String, method: String, status: Int) {
        registry.makeCounter(
            descriptor: Self.descriptor("http_requests", unit: "total", help: "HTTP requests by route, method and status"),
            labels: [("route", route), ("method", method), ("status", String(status))]
        ).increment()
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
        return registry.emitToString()
    }
}

/// Counts every request by its route pattern (not the raw path, which would explode the labels).
struct HTTPMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let response = try await next(request, context)
            metrics.countRequest(route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: response.status.code)
            return response
        } catch let error as any HTTPResponseError {
            metrics.countRequest(route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: error.status.code)
            throw error
        } catch {
            metrics.countRequest(route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: 500)
            throw error
        }
    }
}
