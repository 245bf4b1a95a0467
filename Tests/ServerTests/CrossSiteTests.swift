import Foundation
import Testing

/// A loopback server with auth off trusts whoever reaches its port. A browser reaches it too, on behalf
/// of any web page: these tests play that page (an `Origin` or `Sec-Fetch-Site` of another site, a
/// DNS name rebound to 127.0.0.1) against a live `descent serve`, with curl, which sends exactly the
/// headers it is given.
@Suite("Cross-site requests and browser headers on a live server", .serialized)
struct CrossSiteTests {
    static let spec = #"{"dataset": {"builtin": "moons", "samples": 100}, "model": {"layers": [{"type": "dense", "units": 2}]}, "training": {"epochs": 1}}"#

    @Test("Every answer, pages and errors alike, carries CSP, nosniff, DENY framing and no referrer")
    func everyAnswerCarriesTheBrowserHeaders() async throws {
        try await ServerProcess.withFresh("headers") { server in
            let base = "http://127.0.0.1:\(server.port)"
            for (method, path) in [("GET", "/"), ("GET", "/app.js"), ("GET", "/healthz"), ("GET", "/v1/jobs"), ("GET", "/v1/jobs/job_nothing"),
                                   ("POST", "/v1/jobs/validate"), ("GET", "/no/such/file")] {
                let answer = try Curl.fetch(method, base + path)
                #expect(answer.headers["content-security-policy"]?.contains("frame-ancestors 'none'") == true, "\(path): \(answer.headers)")
                #expect(answer.headers["content-security-policy"]?.contains("default-src 'self'") == true, "\(path)")
                #expect(answer.headers["x-content-type-options"] == "nosniff", "\(path)")
                #expect(answer.headers["x-frame-options"] == "DENY", "\(path)")
                #expect(answer.headers["referrer-policy"] == "no-referrer", "\(path)")
            }
        }
    }

    @Test("With auth off, a page on another site cannot submit jobs, upload or delete; same-origin pages, curl and scripts can")
    func crossSiteStateChangesAreRefused() async throws {
        try await ServerProcess.withFresh("cross-site") { server in
            let base = "http://127.0.0.1:\(server.port)"
            let json = "Content-Type: application/json"
            // A web page posting to the loopback port (fetch with no-cors sends a form type, like curl -d).
            for headers in [["Origin: https://evil.example", json], ["Sec-Fetch-Site: cross-site", json],
                            ["Origin: null", "Content-Type: application/x-www-form-urlencoded"],
                            ["Origin: http://127.0.0.1.evil.example:\(server.port)", json], ["Sec-Fetch-Site: same-site", json]] {
                let answer = try Curl.fetch("POST", base + "/v1/jobs", headers: headers, body: Self.spec)
                #expect(answer.status == 403, "\(headers): \(answer.status) \(answer.body)")
                #expect(answer.body.contains("cross_site_request"), "\(headers): \(answer.body)")
            }
            let upload = try Curl.fetch("POST", base + "/v1/datasets?name=x&format=csv&target=y", headers: ["Origin: https://evil.example"], body: "a,y\n1,2\n")
            #expect(upload.status == 403)
            let listed = try await server.json("GET", "/v1/jobs")
            #expect((listed["jobs"] as? [Any])?.isEmpty == true, "a refused request left a job: \(listed)")

            // The status page (same origin), curl's form type and a plain script all still work.
            for headers in [["Origin: \(base)", "Sec-Fetch-Site: same-origin", json], ["Origin: http://localhost:\(server.port)", json], [json], []] {
                let answer = try Curl.fetch("POST", base + "/v1/jobs", headers: headers, body: Self.spec)
                #expect(answer.status == 201, "\(headers): \(answer.status) \(answer.body)")
            }
            // Reading is not changing: a cross-site GET is answered (the browser keeps its body from the page).
            #expect(try Curl.fetch("GET", base + "/v1/jobs", headers: ["Sec-Fetch-Site: cross-site"]).status == 200)
        }
    }

    @Test("With auth off, a Host header that does not name this server (a rebound DNS name) is refused")
    func reboundHostNamesAreRefused() async throws {
        try await ServerProcess.withFresh("rebinding") { server in
            let base = "http://127.0.0.1:\(server.port)"
            for host in ["attacker.example", "attacker.example:\(server.port)", "127.0.0.1.nip.example"] {
                let answer = try Curl.fetch("GET", base + "/v1/jobs", headers: ["Host: \(host)"])
                #expect(answer.status == 403, "\(host): \(answer.status)")
                #expect(answer.body.contains("wrong_host"), "\(host): \(answer.body)")
            }
            for host in ["127.0.0.1:\(server.port)", "localhost:\(server.port)", "localhost", "[::1]:\(server.port)", "127.0.0.2"] {
                #expect(try Curl.fetch("GET", base + "/v1/jobs", headers: ["Host: \(host)"]).status == 200, "\(host)")
            }
        }
    }
}
