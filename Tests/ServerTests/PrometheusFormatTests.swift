import Foundation
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing

/// `GET /metrics` read by Prometheus' own parser (prometheus_client's text-format parser).
@Suite("Prometheus exposition")
struct PrometheusFormatTests {
    /// Parses the exposition with prometheus_client and returns its families: name → (type, samples).
    static let parser = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        families = {}
        for family in text_string_to_metric_families(sys.stdin.read()):
            families[family.name] = {"type": family.type,
                                     "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples]}
        print(json.dumps(families))
        """

    @Test("the exposition parses with Prometheus' parser and holds jobs, queue, durations, epochs and samples trained, HTTP requests with latency, and the database size")
    func parsesWithPrometheusParser() async throws {
        let python = try await PythonTools.python(with: ["prometheus_client==0.21.1"])
        try await withServer(ServerOptions(runsWorkers: true, fileDatabase: true)) { api in
            let id = try await api.submit([
                "dataset": ["builtin": "moons", "samples": 300], "validation": ["split": 0],
                "model": ["layers": [["type": "dense", "units": 8, "activation": "relu"], ["type": "dense", "units": 2]]],
                "training": ["epochs": 4],
            ])
            #expect(try await api.waitUntilFinished(id)["status"] == "succeeded")
            _ = try await api.get("/v1/jobs/\(id)")
            let text = try await api.get("/metrics").text
            let json = try await PythonTools.runDetached(python, ["-c", Self.parser], input: Data(text.utf8))
            let families = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: [String: Any]])
            func samples(_ family: String) -> [[String: Any]] { families[family]?["samples"] as? [[String: Any]] ?? [] }
            func value(_ family: String, _ sample: String? = nil, labels: [String: String] = [:]) -> Double? {
                samples(family).first { entry in
                    let sampleLabels = entry["labels"] as? [String: String] ?? [:]
                    return (entry["name"] as? String) == (sample ?? family) && labels.allSatisfy { sampleLabels[$0.key] == $0.value }
                }?["value"] as? Double
            }
            #expect(families["descent_jobs"]?["type"] as? String == "gauge")
            #expect(value("descent_jobs", labels: ["status": "succeeded"]) == 1)
            #expect(value("descent_queue_depth") == 0)
            #expect(families["descent_job_duration_seconds"]?["type"] as? String == "histogram")
            #expect(value("descent_job_duration_seconds", "descent_job_duration_seconds_count") == 1)
            // prometheus_client names a counter family without its _total suffix.
            #expect(value("descent_epochs_trained", "descent_epochs_trained_total") == 4)
            #expect(value("descent_samples_trained", "descent_samples_trained_total") == Double(4 * 300))
            #expect(value("descent_http_requests", "descent_http_requests_total",
                          labels: ["route": "/v1/jobs/{id}", "method": "GET", "status": "200"]) ?? 0 >= 1)
            #expect(families["descent_http_request_duration_seconds"]?["type"] as? String == "histogram")
            #expect(value("descent_http_request_duration_seconds", "descent_http_request_duration_seconds_count",
                          labels: ["route": "/v1/jobs/{id}", "method": "GET"]) ?? 0 >= 1)
            #expect(value("descent_database_bytes") ?? 0 > 4096)
        }
    }
}
