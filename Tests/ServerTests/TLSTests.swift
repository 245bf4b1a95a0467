import Foundation
import Testing

/// `descent serve --tls-cert --tls-key` with a self-signed certificate made for the test (openssl),
/// spoken to with curl, which trusts exactly that certificate.
@Suite("HTTPS with --tls-cert and --tls-key", .serialized)
struct TLSTests {
    /// A self-signed P-256 certificate for localhost and 127.0.0.1, and its key, in a fresh folder.
    static func withCertificate<T>(_ body: (_ certificate: URL, _ key: URL) async throws -> T) async throws -> T {
        try await withTemporaryFolder { folder in
            let certificate = folder.appendingPathComponent("cert.pem"), key = folder.appendingPathComponent("key.pem")
            try PythonTools.run(URL(fileURLWithPath: "/usr/bin/openssl"), [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                "-keyout", key.path, "-out", certificate.path, "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ])
            return try await body(certificate, key)
        }
    }

    @Test("the API and the status page answer over HTTPS with HSTS, a job trains to the end, and plain HTTP on the port gets nothing")
    func servesHTTPS() async throws {
        try await Self.withCertificate { certificate, key in
            try await ServerProcess.withFresh("tls", arguments: ["--tls-cert", certificate.path, "--tls-key", key.path],
                                              trusting: certificate) { server in
                let base = "https://localhost:\(server.port)"
                let trust = ["--cacert", certificate.path]
                let health = try Curl.fetch("GET", base + "/healthz", options: trust)
                #expect(health.status == 200 && health.body.contains("ok"))
                #expect(health.headers["strict-transport-security"] == "max-age=31536000")
                #expect(try Curl.fetch("GET", base + "/", options: trust).status == 200)

                let spec = #"{"dataset": {"builtin": "moons", "samples": 200}, "model": {"layers": [{"type": "dense", "units": 2}]}, "training": {"epochs": 2}}"#
                let created = try Curl.fetch("POST", base + "/v1/jobs", headers: ["Content-Type: application/json"], body: spec, options: trust)
                #expect(created.status == 201, "\(created.body)")
                let id = try #require(created.body.firstMatch(of: /"id":"(job_[a-z0-9]+)"/)?.1, "\(created.body)")
                var status = ""
                for _ in 0..<600 where !["succeeded", "failed"].contains(status) {
                    let job = try Curl.fetch("GET", base + "/v1/jobs/\(id)", options: trust)
                    status = job.body.firstMatch(of: /"status":"([a-z]+)"/).map { String($0.1) } ?? ""
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(status == "succeeded")

                // Unencrypted HTTP, or a client that does not trust the certificate, gets no answer.
                #expect(throws: ProcessFailure.self) { try Curl.fetch("GET", "http://127.0.0.1:\(server.port)/healthz") }
                #expect(throws: ProcessFailure.self) { try Curl.fetch("GET", base + "/healthz") }
            }
        }
    }

    @Test("a missing certificate, a key that is not PEM, or one flag without the other stops the start with a message naming it")
    func badFilesStopTheStart() async throws {
        try await Self.withCertificate { certificate, key in
            let garbage = certificate.deletingLastPathComponent().appendingPathComponent("garbage.pem")
            try Data("not a key".utf8).write(to: garbage)
            for (arguments, named) in [(["--tls-cert", "/nonexistent/cert.pem", "--tls-key", key.path], "/nonexistent/cert.pem"),
                                       (["--tls-cert", certificate.path, "--tls-key", garbage.path], "garbage.pem"),
                                       (["--tls-cert", certificate.path], "--tls-key")] {
                let process = Process()
                process.executableURL = ServerProcess.executable
                process.arguments = ["serve", "--port", String(ServerProcess.freePort()), "--data-dir",
                                     certificate.deletingLastPathComponent().appendingPathComponent("data").path] + arguments
                let output = Pipe()
                process.standardOutput = output
                process.standardError = output
                try process.run()
                let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                #expect(process.terminationStatus != 0, "\(arguments): \(text)")
                #expect(text.contains(named), "\(arguments): \(text)")
            }
        }
    }
}
