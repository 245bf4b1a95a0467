import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JobStore
import NeuralNetwork
import Server
import Datasets
import Testing
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Limits")
struct LimitsTests {
    // MARK: Per tenant

    @Test("a tenant's queued and running jobs are limited, a study's included; the 429 names the limit and spares other tenants")
    func queuedJobsPerTenant() async throws {
        try await withTwoTenants(ServerOptions(configure: { $0.maxQueuedPerTenant = 3 })) { tenants in
            let acme = tenants.acme
            let first = try await acme.post("/v1/jobs", json: try Specs.moons(), headers: [HTTPField.Name("Idempotency-Key")!: "first"])
            #expect(first.status == .created)
            _ = try await acme.submit(try Specs.moons())
            let study = { (rates: String) in try JSONValue.parse(Data("""
                {"base": \(try Specs.moons().encodedString()), "parameters": {"optimizer.lr": [\(rates)]}}
                """.utf8)) }
            let tooBig = try await acme.post("/v1/studies", json: try study("0.1, 0.01"))
            try expectError(tooBig, .tooManyRequests, code: "too_many_jobs", naming: ["--max-queued-per-tenant", "3", "acme"])
            #expect(try await acme.get("/v1/studies").json()["studies"]?.array?.count == 0, "nothing of the refused study is stored")
            #expect(try await acme.post("/v1/studies", json: try study("0.1")).status == .created)

            let fourth = try await acme.post("/v1/jobs", json: try Specs.moons())
            try expectError(fourth, .tooManyRequests, code: "too_many_jobs", naming: ["--max-queued-per-tenant", "3"])
            #expect(try await acme.get("/v1/jobs").json()["jobs"]?.array?.count == 3)
            // A retried POST is no new job; another tenant has its own allowance.
            let retry = try await acme.post("/v1/jobs", json: try Specs.moons(), headers: [HTTPField.Name("Idempotency-Key")!: "first"])
            #expect(retry.status == .ok)
            #expect(try await tenants.globex.post("/v1/jobs", json: try Specs.moons()).status == .created)
            // A cancelled job frees its place.
            let firstId = try #require(try first.json()["id"]?.string)
            #expect(try await acme.post("/v1/jobs/\(firstId)/cancel").status == .accepted)
            #expect(try await acme.post("/v1/jobs", json: try Specs.moons()).status == .created)
        }
    }

    @Test("the MPI ranks a tenant's queued and running jobs ask for are limited together; the 429 names the limit")
    func mpiProcessesPerTenant() async throws {
        try await withServer(ServerOptions(configure: { $0.maxMPIProcessesPerTenant = 5 })) { api in
            func spec(_ processes: Int) throws -> JSONValue {
                try parsedJSON("""
                    {"dataset": {"builtin": "moons", "samples": 200}, "model": {"layers": [{"type": "dense", "units": 2}]},
                     "training": {"epochs": 1, "batch_size": 32}, "distributed": {"processes": \(processes)}}
                    """)
            }
            _ = try await api.submit(try spec(3))
            try expectError(try await api.post("/v1/jobs", json: try spec(3)), .tooManyRequests, code: "too_many_mpi_processes",
                            naming: ["--max-mpi-processes-per-tenant", "5"])
            #expect(try await api.post("/v1/jobs", json: try spec(2)).status == .created)
            #expect(try await api.post("/v1/jobs", json: try Specs.moons()).status == .created, "jobs without ranks are not counted")
        }
    }

    @Test("a tenant keeps at most --max-datasets-per-tenant datasets; the 429 leaves no file behind")
    func datasetsPerTenant() async throws {
        try await withTwoTenants(ServerOptions(configure: { $0.maxDatasetsPerTenant = 1 })) { tenants in
            let first = try await tenants.acme.uploadShared("iris.csv", name: "iris")
            let files = try tenants.acme.datasetFiles()
            let second = try await tenants.acme.upload(try Data(contentsOf: RepositoryFiles.dataset("iris.csv")), query: "name=again")
            try expectError(second, .tooManyRequests, code: "too_many_datasets", naming: ["--max-datasets-per-tenant", "1"])
            #expect(try tenants.acme.datasetFiles() == files)
            _ = try await tenants.globex.uploadShared("iris.csv", name: "iris")
            // Deleting one makes room.
            #expect(try await tenants.acme.delete("/v1/datasets/\(first["id"]?.string ?? "")").status == .noContent)
            _ = try await tenants.acme.uploadShared("iris.csv", name: "again")
        }
    }

    @Test("a tenant's datasets stay within --max-dataset-bytes-per-tenant; the 413 leaves no file behind")
    func datasetBytesPerTenant() async throws {
        let iris = try Data(contentsOf: RepositoryFiles.dataset("iris.csv"))
        try await withTwoTenants(ServerOptions(configure: { $0.maxDatasetBytesPerTenant = iris.count + 1000 })) { tenants in
            let first = try await tenants.acme.uploadShared("iris.csv", name: "iris")
            let files = try tenants.acme.datasetFiles()
            let second = try await tenants.acme.upload(iris, query: "name=again")
            try expectError(second, .contentTooLarge, code: "dataset_storage_full", naming: ["--max-dataset-bytes-per-tenant", "\(iris.count + 1000)"])
            #expect(try tenants.acme.datasetFiles() == files)
            // One upload bigger than the whole allowance is cut off while it streams.
            let huge = Data(repeating: UInt8(ascii: "1"), count: iris.count + 2000)
            try expectError(try await tenants.globex.upload(huge, query: "name=huge"), .contentTooLarge, code: "dataset_storage_full",
                            naming: ["--max-dataset-bytes-per-tenant"])
            #expect(try tenants.acme.datasetFiles() == files)
            #expect(try await tenants.acme.delete("/v1/datasets/\(first["id"]?.string ?? "")").status == .noContent)
            _ = try await tenants.acme.uploadShared("iris.csv", name: "again")
        }
    }

    // MARK: Per job

    @Test("epochs × training rows above --max-epoch-samples is a 422 at training.epochs naming the limit")
    func epochSamples() async throws {
        try await withServer(ServerOptions(configure: { $0.maxEpochSamples = 1000 })) { api in
            // 400 moons, 20 % held out for validation: 320 training rows.
            #expect(try await api.post("/v1/jobs/validate", json: try Specs.moons(epochs: 3, samples: 400)).status == .ok)
            for route in ["/v1/jobs", "/v1/jobs/validate"] {
                let response = try await api.post(route, json: try Specs.moons(epochs: 4, samples: 400))
                let error = try expectError(response, .unprocessableContent, code: "invalid", naming: ["--max-epoch-samples", "1000", "1280"])
                #expect(error.paths == ["training.epochs"])
            }
            let study = try await api.post("/v1/studies", json: try JSONValue.parse(Data("""
                {"base": \(try Specs.moons(epochs: 1, samples: 400).encodedString()), "parameters": {"training.epochs": [2, 5]}}
                """.utf8)))
            let error = try expectError(study, .unprocessableContent, naming: ["--max-epoch-samples"])
            #expect(error.paths == ["parameters.training.epochs[1]"], "\(error.allText)")
            try await api.expectNoJob()
        }
    }

    @Test("a model above --max-model-parameters is a 422 at model naming the limit, checked from shapes alone")
    func modelParameters() async throws {
        try await withServer(ServerOptions(configure: { $0.maxModelParameters = 100 })) { api in
            #expect(try await api.post("/v1/jobs/validate", json: try Specs.moons()).status == .ok)  // 42 parameters
            let wide = try JSONValue.parse(Data("""
                {"dataset": {"builtin": "moons", "samples": 100}, "model": {"layers": [{"type": "dense", "units": 64}, {"type": "dense", "units": 2}]}}
                """.utf8))
            let error = try expectError(try await api.post("/v1/jobs", json: wide), .unprocessableContent, naming: ["--max-model-parameters", "100", "322"])
            #expect(error.paths == ["model"])
            try await api.expectNoJob()
        }
        // The default limit, 50 million: 2 → 8000 → 8000 → 2 is 64 million parameters, refused without allocating them.
        try await withServer { api in
            let huge = try JSONValue.parse(Data("""
                {"dataset": {"builtin": "moons", "samples": 100}, "model": {"layers": [{"type": "dense", "units": 8000},
                 {"type": "dense", "units": 8000}, {"type": "dense", "units": 2}]}}
                """.utf8))
            try expectError(try await api.post("/v1/jobs", json: huge), .unprocessableContent, naming: ["50000000", "--max-model-parameters"])
        }
    }

    @Test("an input shape too big to count is a 422 at model.input_shape, not a crash")
    func overflowingShapes() async throws {
        try await withServer { api in
            let body = #"{"dataset": {"builtin": "moons"}, "model": {"input_shape": [1000000000000, 1000000000000, 1000000000000, 1000000000], "layers": [{"type": "dense", "units": 2}]}}"#
            let error = try expectError(try await api.post("/v1/jobs/validate", body: body), .unprocessableContent, naming: ["2147483648"])
            #expect(error.paths == ["model.input_shape"])
            let reshape = #"{"dataset": {"builtin": "moons"}, "model": {"layers": [{"type": "reshape", "shape": [4294967296, 4294967296]}, {"type": "dense", "units": 2}]}}"#
            try expectError(try await api.post("/v1/jobs/validate", body: reshape), .unprocessableContent, naming: ["model.layers[0].shape"])
            #expect(try await api.get("/healthz").status == .ok)
        }
    }

    // MARK: Request bodies

    @Test("a spec or study body over 1 MiB is a 413 naming the limit")
    func specBodySize() async throws {
        try await withServer { api in
            let body = #"{"name": ""# + String(repeating: "x", count: 1024 * 1024) + #""}"#
            for route in ["/v1/jobs", "/v1/jobs/validate", "/v1/studies"] {
                try expectError(try await api.post(route, body: body), .contentTooLarge, code: "body_too_large", naming: ["1048576"])
            }
            try await api.expectNoJob()
        }
    }

    @Test("JSON nested deeper than 64 levels is a 422 naming the limit; 64 levels are parsed as usual")
    func jsonDepth() async throws {
        try await withServer { api in
            func nested(_ depth: Int) -> String {
                // The outer object is level 1.
                #"{"model": "# + String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1) + "}"
            }
            for route in ["/v1/jobs", "/v1/jobs/validate", "/v1/studies", "/v1/jobs/\(makeIdentifier(prefix: "job_"))/predict"] {
                let deep = try await api.post(route, body: nested(65))
                if route.hasSuffix("/predict") {
                    // An unknown job answers 404 first; its body is never read.
                    #expect(deep.status == .notFound)
                    continue
                }
                try expectError(deep, .unprocessableContent, code: "too_deep", naming: ["64"])
                let fine = try expectError(try await api.post(route, body: nested(64)), .unprocessableContent)
                #expect(fine.code == "invalid", "\(route): \(fine.allText)")
            }
            // Far deeper than any parser's own limit: still a 422, and the server carries on.
            let abyss = String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000)
            try expectError(try await api.post("/v1/jobs", body: abyss), .unprocessableContent, code: "too_deep")
            // Brackets inside strings do not count.
            let quoted = #"{"name": ""# + String(repeating: "[", count: 100) + #"", "dataset": {"builtin": "moons"}, "model": {"layers": [{"type": "dense", "units": 2}]}}"#
            #expect(try await api.post("/v1/jobs/validate", body: quoted).status == .ok)
            #expect(try await api.get("/healthz").status == .ok)
        }
    }

    @Test("predictions keep the larger JSON limit: a body over 1 MiB is no problem there")
    func predictionBodiesAreNotSpecs() async throws {
        try await withServer(ServerOptions(runsWorkers: true)) { api in
            let id = try await api.submit(try Specs.moons(epochs: 1))
            #expect(try await api.waitUntilFinished(id)["status"] == "succeeded")
            // Long-winded numbers: a big body of few rows.
            let digits = String(repeating: "0", count: 40)
            let row = "[0.5\(digits), -0.25\(digits)]"
            let inputs = Array(repeating: row, count: 13_000).joined(separator: ",")
            let body = #"{"inputs": ["# + inputs + "]}"
            #expect(body.utf8.count > 1024 * 1024)
            let response = try await api.post("/v1/jobs/\(id)/predict", body: body)
            #expect(response.status == .ok)
            #expect(try response.json()["predictions"]?.array?.count == 13_000)
        }
    }

    // MARK: Slow and stalled clients

    @Test("a connection that stalls in the middle of its request head is closed after the idle timeout")
    func stalledConnectionIsClosed() async throws {
        try await withServer(ServerOptions(configure: { $0.idleTimeout = .seconds(1) }), setup: .live) { api in
            let port = try #require(api.port)
            let connection = try RawConnection(port: port, receiveTimeout: 20)
            connection.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n")  // no blank line: the head never ends
            let outcome = await connection.readUntilClosed()
            #expect(outcome == .closed, "the server kept the stalled connection open")
        }
    }

    @Test("a JSON body that does not arrive in time is a 408")
    func slowBodyTimesOut() async throws {
        try await withServer(ServerOptions(configure: { $0.bodyTimeout = .seconds(1) }), setup: .live) { api in
            let port = try #require(api.port)
            // The answer is due after 1 s; the wait is long because the whole suite shares two cores with this server.
            let connection = try RawConnection(port: port, receiveTimeout: 90)
            connection.send("POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\": ")
            let answer = await connection.read(until: "request_timeout")
            #expect(answer?.hasPrefix("HTTP/1.1 408") == true, "\(answer ?? "no answer")")
            #expect(try await api.get("/healthz").status == .ok)
        }
    }

    @Test("Under an open-file limit of 160, 150 idle connections leave the server its files: on a connection already open an upload and a job still succeed")
    func idleSocketsDoNotStarveFiles() async throws {
        try await ServerProcess.withFresh("sockets", launcher: ["/usr/bin/prlimit", "--nofile=160:160", "--"]) { server in
            #expect(server.log().contains("serving at most 80 connections"), "\(server.log().suffix(2000))")
            let open = try RawConnection(port: server.port, receiveTimeout: 90)
            open.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(await open.read(until: "ok")?.hasPrefix("HTTP/1.1 200") == true)
            // Without the cap these would take every descriptor (EMFILE): no dataset file, no database page, no worker pipe.
            let idle = try (0..<150).map { _ in try RawConnection(port: server.port, receiveTimeout: 90) }
            try await Task.sleep(for: .milliseconds(500))
            let csv = "a,b,y\n1,2,0\n3,4,1\n2,2,0\n4,3,1\n"
            open.send("POST /v1/datasets?name=tiny HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\nContent-Length: \(csv.utf8.count)\r\n\r\n\(csv)")
            let upload = await open.read(until: "created_at")
            #expect(upload?.hasPrefix("HTTP/1.1 201") == true, "\(upload ?? "no answer")")
            let spec = #"{"dataset": {"name": "tiny"}, "model": {"layers": [{"type": "dense", "units": 2}]}, "training": {"epochs": 2}}"#
            open.send("POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: \(spec.utf8.count)\r\n\r\n\(spec)")
            let submitted = await open.read(until: "job_")
            #expect(submitted?.hasPrefix("HTTP/1.1 201") == true, "\(submitted ?? "no answer")")
            let id = try #require(submitted?.firstMatch(of: /"id":"(job_[a-z0-9]+)"/)?.1)
            // Closed now: a new connection would wait behind them in the listen backlog until they time out.
            withExtendedLifetime(idle) {}
            #expect(try await server.waitForJob(String(id), timeout: 300) { ["succeeded", "failed"].contains($0["status"] as? String) }["status"] as? String == "succeeded")
        }
    }

    @Test("SIGTERM with an upload stalled halfway: the server exits within --shutdown-timeout, not when the client gives up, and leaves no partial file")
    func shutdownDoesNotWaitForSlowUploads() async throws {
        try await ServerProcess.withFresh("slow-upload", arguments: ["--shutdown-timeout", "2"]) { server in
            let connection = try RawConnection(port: server.port, receiveTimeout: 90)
            connection.send("POST /v1/datasets?name=slow HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\na,b,y\n1,2,0\n")
            try await Task.sleep(for: .milliseconds(500))
            let seconds = try await server.stop(with: SIGTERM, timeout: 30)
            print("[figures] SIGTERM with a stalled upload: exited after \(String(format: "%.1f", seconds)) s (--shutdown-timeout 2)")
            #expect(seconds < 15, "the stalled upload held the shutdown for \(seconds) s")
            let files = try FileManager.default.contentsOfDirectory(atPath: server.dataFolder.appendingPathComponent("datasets").path)
            #expect(files.isEmpty, "\(files)")
            withExtendedLifetime(connection) {}
        }
    }

    @Test("a dataset upload that does not arrive whole within --upload-timeout is a 408 and leaves no file")
    func slowUploadTimesOut() async throws {
        try await withServer(ServerOptions(configure: { $0.uploadTimeout = .seconds(1) }), setup: .live) { api in
            let port = try #require(api.port)
            let connection = try RawConnection(port: port, receiveTimeout: 90)
            connection.send("POST /v1/datasets?name=slow HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\na,b,y\n1,2,0\n")
            let answer = await connection.read(until: "request_timeout")
            #expect(answer?.hasPrefix("HTTP/1.1 408") == true, "\(answer ?? "no answer")")
            #expect(try api.datasetFiles().isEmpty)
            try await api.expectNoDatasetLeft()
        }
    }

    @Test("a sample with more features than --max-features is a 422 naming the limit, for CSV and NPY alike")
    func featuresPerSampleAreCapped() async throws {
        try await withServer(ServerOptions(configure: { $0.maxFeatures = 3 })) { api in
            let csv = try await api.upload(Data("a,b,c,d,y\n1,2,3,4,0\n5,6,7,8,1\n".utf8), query: "name=wide")
            let csvError = try expectError(csv, .unprocessableContent, naming: ["body"])
            #expect(csvError.details.first?.message.contains("4 features; the limit is 3 (--max-features)") == true, "\(csv.text)")
            let npy = try await api.upload(NPYWriter.float32(shape: [2, 4], values: Array(repeating: 0.5, count: 8)), query: "name=wide&format=npy",
                                           contentType: "application/octet-stream")
            try expectError(npy, .unprocessableContent, naming: ["body"])
            #expect(try await api.upload(Data("a,b,y\n1,2,0\n3,4,1\n".utf8), query: "name=narrow").status == .created)
            #expect(try api.datasetFiles().count == 1)
        }
    }
}

/// A raw TCP connection to the live test server, to play a slow or stalled client.
final class RawConnection: @unchecked Sendable {
    enum Outcome: Equatable { case closed, timedOut }

    private let descriptor: Int32

    init(port: Int, receiveTimeout seconds: Int) throws {
        #if canImport(Glibc)
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        descriptor = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            close(descriptor)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .ECONNREFUSED)
        }
    }

    deinit { close(descriptor) }

    func send(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { buffer in
            #if canImport(Glibc)
            Glibc.send(descriptor, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
            #else
            Darwin.send(descriptor, buffer.baseAddress, buffer.count, 0)
            #endif
        }
    }

    /// Reads (off the cooperative pool: `recv` blocks) until the server closes the connection, or
    /// the receive timeout passes with nothing new.
    func readUntilClosed() async -> Outcome {
        await readOffThePool { text in nil } == nil ? .timedOut : .closed
    }

    /// What the server sent, once it contains `marker`; nil if the connection closes or times out first.
    func read(until marker: String) async -> String? {
        let text = await readOffThePool { $0.contains(marker) ? $0 : nil }
        return text?.contains(marker) == true ? text : nil
    }

    /// Reads until `done` returns a value (returned), the connection closes (what was read is
    /// returned) or the receive timeout passes (nil).
    private func readOffThePool(_ done: @escaping @Sendable (String) -> String?) async -> String? {
        let descriptor = self.descriptor
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var received = [UInt8]()
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = recv(descriptor, &buffer, buffer.count, 0)
                    if count == 0 { return continuation.resume(returning: String(decoding: received, as: UTF8.self)) }
                    if count < 0 { return continuation.resume(returning: nil) }
                    received += buffer[0..<count]
                    if let result = done(String(decoding: received, as: UTF8.self)) { return continuation.resume(returning: result) }
                }
            }
        }
    }
}
