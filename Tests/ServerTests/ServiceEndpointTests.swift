import Foundation
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing

@Suite("Service endpoints")
struct ServiceEndpointTests {
    @Test("GET /healthz answers status ok")
    func healthz() async throws {
        try await withServer { api in
            let response = try await api.get("/healthz")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
            #expect(try response.json() == ["status": "ok"])
        }
    }

    @Test("GET / serves the status page and its script and stylesheet")
    func statusPage() async throws {
        try await withServer { api in
            let page = try await api.get("/")
            #expect(page.status == .ok)
            #expect(page.headers[.contentType]?.hasPrefix("text/html") == true)
            #expect(page.text.lowercased().hasPrefix("<!doctype html>"))
            #expect(page.text.contains("<title>Descent"))
            for asset in ["/app.js", "/style.css"] {
                let response = try await api.get(asset)
                #expect(response.status == .ok, "\(asset)")
                #expect(response.body.readableBytes > 0, "\(asset)")
            }
        }
    }

    @Test("GET /openapi.yaml serves the contract as OpenAPI 3.1")
    func openAPI() async throws {
        try await withServer { api in
            let response = try await api.get("/openapi.yaml")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.contains("yaml") == true)
            #expect(response.text.hasPrefix("openapi: 3.1"))
            for path in ["/healthz:", "/v1/datasets:", "/v1/jobs:", "/v1/jobs/validate:", "/v1/jobs/{id}/events:", "/v1/jobs/{id}/predict:"] {
                #expect(response.text.contains(path), "openapi.yaml does not describe \(path)")
            }
        }
    }

    @Test("GET /metrics is Prometheus text with jobs by status, queue depth and requests by route")
    func metrics() async throws {
        try await withServer { api in
            let first = try await api.submit(try Specs.moons())
            _ = try await api.submit(try Specs.moons())
            #expect(try await api.post("/v1/jobs/\(first)/cancel").status == .accepted)
            #expect(try await api.get("/healthz").status == .ok)
            #expect(try await api.get("/healthz").status == .ok)
            #expect(try await api.get("/v1/jobs/job_doesnotexist").status == .notFound)

            let response = try await api.get("/metrics")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = response.text
            #expect(text.contains("# TYPE descent_jobs gauge"))
            #expect(prometheusValue(text, "descent_jobs", ["status": "queued"]) == 1)
            #expect(prometheusValue(text, "descent_jobs", ["status": "cancelled"]) == 1)
            for status in ["running", "succeeded", "failed"] {
                #expect(prometheusValue(text, "descent_jobs", ["status": status]) == 0, "descent_jobs{status=\"\(status)\"}")
            }
            #expect(prometheusValue(text, "descent_queue_depth") == 1)

            #expect(text.contains("# TYPE descent_http_requests_total counter"))
            func requests(_ route: String, _ method: String, _ status: Int) -> Double? {
                prometheusValue(text, "descent_http_requests_total", ["route": route, "method": method, "status": String(status)])
            }
            #expect(requests("/healthz", "GET", 200) == 2)
            #expect(requests("/v1/jobs", "POST", 201) == 2)
            #expect(requests("/v1/jobs/{id}/cancel", "POST", 202) == 1)
            #expect(requests("/v1/jobs/{id}", "GET", 404) == 1)
            #expect(requests("/metrics", "GET", 200) == nil, "a scrape is counted once it has answered")

            let again = try await api.get("/metrics").text
            #expect(prometheusValue(again, "descent_http_requests_total", ["route": "/metrics", "method": "GET", "status": "200"]) == 1)
        }
    }
}
