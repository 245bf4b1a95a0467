import Foundation
import Hummingbird
import HummingbirdTesting
import NeuralNetwork
import Testing

/// GAN jobs (`"task": "gan"`) through the API with the worker pool on: training, metrics,
/// `/samples` as JSON and as a PNG grid, the model download, and what `/predict` says.
@Suite("GAN jobs through the API")
struct GANEndpointTests {
    static let workers = ServerOptions(runsWorkers: true)

    static func mixtureSpec(epochs: Int = 20) throws -> JSONValue {
        try parsedJSON("""
            {"name": "ring", "task": "gan", "dataset": {"builtin": "gaussian_mixture", "samples": 1000, "seed": 2},
             "model": {"generator": {"latent_dim": 8, "layers": [{"type": "dense", "units": 32, "activation": "relu"}, {"type": "dense", "units": 2}]},
                       "discriminator": {"layers": [{"type": "dense", "units": 32, "activation": "leaky_relu"}, {"type": "dense", "units": 1}]}},
             "optimizer": {"lr": 0.001}, "training": {"epochs": \(epochs), "batch_size": 50, "seed": 1}}
            """)
    }

    static func imageSpec() throws -> JSONValue {
        try parsedJSON("""
            {"task": "gan", "dataset": {"builtin": "shapes_images", "samples": 64, "noise": 0, "classes": 4},
             "model": {"generator": {"latent_dim": 8, "layers": [{"type": "dense", "units": 256, "activation": "sigmoid"}, {"type": "reshape", "shape": [1, 16, 16]}]},
                       "discriminator": {"layers": [{"type": "flatten"}, {"type": "dense", "units": 16, "activation": "leaky_relu"}, {"type": "dense", "units": 1}]}},
             "training": {"epochs": 1, "batch_size": 32}}
            """)
    }

    @Test("A GAN job on gaussian_mixture succeeds, reports d_loss, g_loss, D(x) and D(G(z)) per epoch, and serves samples")
    func mixtureJob() async throws {
        try await withServer(Self.workers) { api in
            let id = try await api.submit(try Self.mixtureSpec())
            let job = try await api.waitUntilFinished(id)
            #expect(job["status"] == "succeeded", "\(job.encodedString())")
            #expect(job["spec"]?["task"] == "gan")
            #expect(job["spec"]?["model"]?["generator"]?["latent_dim"]?.int == 8)
            #expect(job["spec"]?["model"]?["discriminator"]?["input_shape"] == [2])
            #expect(job["spec"]?["optimizer"]?["betas"] == [0.5, 0.999])
            #expect(job["spec"]?["validation"]?["split"]?.number == 0)
            #expect(job["latest"]?["d_real"]?.number != nil && job["latest"]?["d_fake"]?.number != nil)
            let result = try #require(job["result"])
            #expect(result["parameters"]?.int == (8 * 32 + 32 + 32 * 2 + 2) + (2 * 32 + 32 + 32 + 1))
            #expect(result["generator_parameters"]?.int == 8 * 32 + 32 + 32 * 2 + 2)
            #expect(result["d_loss"]?.number != nil && result["g_loss"]?.number != nil)

            // Metrics: the common fields and the GAN's.
            let rows = try #require(try await api.get("/v1/jobs/\(id)/metrics").json()["epochs"]?.array)
            #expect(rows.count == 20)
            let fields: Set = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "grad_norm", "penalty", "sparsity",
                               "seconds", "samples_per_second", "d_loss", "g_loss", "d_real", "d_fake"]
            for row in rows {
                #expect(row.object.map { Set($0.keys) } == fields, "\(row.encodedString())")
                let dReal = row["d_real"]?.number ?? -1, dFake = row["d_fake"]?.number ?? -1
                #expect((0...1).contains(dReal) && (0...1).contains(dFake))
                #expect(row["d_loss"]?.number?.isFinite == true && (row["d_loss"]?.number ?? 0) > 0)
                #expect(row["train_loss"] == row["g_loss"])
                #expect(row["lr"]?.number == 0.001)
                #expect(row["val_loss"] == .null)
            }

            // Samples as JSON: 64 by default, in the data's units; a seed repeats them.
            let samples = try await api.get("/v1/jobs/\(id)/samples")
            #expect(samples.status == .ok, "\(samples.text)")
            let body = try samples.json()
            #expect(body["shape"] == [2])
            #expect(body["n"]?.int == 64)
            #expect(body["seed"]?.number != nil)
            let points = try #require(body["samples"]?.array)
            #expect(points.count == 64)
            #expect(points.allSatisfy { $0.array?.count == 2 && $0.array?.allSatisfy { $0.number?.isFinite == true } == true })
            let meanRadius = points.map { point -> Double in
                let x = point[0]?.number ?? 0, y = point[1]?.number ?? 0
                return (x * x + y * y).squareRoot()
            }.reduce(0, +) / 64
            #expect((1...3).contains(meanRadius), "the ring has radius 2; mean radius of the samples \(meanRadius)")
            let first = try await api.get("/v1/jobs/\(id)/samples?n=5&seed=42").json()
            let again = try await api.get("/v1/jobs/\(id)/samples?n=5&seed=42").json()
            #expect(first["samples"]?.array?.count == 5)
            #expect(first == again)
            #expect(first["seed"]?.int == 42)
            #expect(try await api.get("/v1/jobs/\(id)/samples?n=5&seed=43").json()["samples"] != first["samples"])
            #expect(try await api.get("/v1/jobs/\(id)/samples?n=1024").json()["samples"]?.array?.count == 1024)

            for (query, path) in [("n=0", "n"), ("n=1025", "n"), ("n=ten", "n"), ("seed=-1", "seed"), ("format=bmp", "format")] {
                let error = try expectError(try await api.get("/v1/jobs/\(id)/samples?\(query)"), .unprocessableContent, code: "invalid")
                #expect(error.paths == [path], "\(query): \(error.allText)")
            }
            // Points are no image.
            try expectError(try await api.get("/v1/jobs/\(id)/samples?format=png"), .unprocessableContent, code: "invalid",
                            naming: ["[1, H, W] or [3, H, W]", "[2]"])

            // The model downloads: both networks in one safetensors file.
            let model = try await api.get("/v1/jobs/\(id)/model")
            #expect(model.status == .ok)
            #expect(model.headers[.contentType] == "application/octet-stream")
            #expect(model.headers[.contentDisposition]?.contains("ring.safetensors") == true)
            let file = try SafeTensorsFile.parse(model.data)
            #expect(file.metadata["task"] == "gan" && file.metadata["latent_dim"] == "8")
            #expect(file.tensors.map(\.name).allSatisfy { $0.hasPrefix("generator.layers.") || $0.hasPrefix("discriminator.layers.") })
            #expect(file.tensor(named: "generator.layers.0.weight")?.shape == [32, 8])
            #expect(file.tensor(named: "discriminator.layers.1.weight")?.shape == [1, 32])

            // A generator takes no inputs: predict points to /samples.
            let predict = try await api.post("/v1/jobs/\(id)/predict", body: #"{"inputs": [[0, 0]]}"#)
            try expectError(predict, .conflict, code: "gan_job", naming: ["/v1/jobs/\(id)/samples"])

            // Deleting the job removes its model; its samples are gone with it.
            #expect(try await api.delete("/v1/jobs/\(id)").status == .noContent)
            try expectError(try await api.get("/v1/jobs/\(id)/samples"), .notFound)
        }
    }

    @Test("An answer holds at most 1 Mi values: n samples of a wide generator past that are a 422 at n saying how many fit")
    func samplesAreBoundedByValues() async throws {
        try await withServer(Self.workers) { api in
            // 8192 features a sample: 128 samples fit in one answer.
            let header = (0..<8192).map { "x\($0)" }.joined(separator: ",") + ",y\n"
            let rows = (0..<8).map { row in (0..<8192).map { String(Double(($0 + row) % 7) / 7) }.joined(separator: ",") + ",0\n" }.joined()
            #expect(try await api.upload(Data((header + rows).utf8), query: "name=wide").status == .created)
            let id = try await api.submit(try parsedJSON("""
                {"task": "gan", "dataset": {"name": "wide"},
                 "model": {"generator": {"latent_dim": 4, "layers": [{"type": "dense", "units": 8192, "activation": "sigmoid"}]},
                           "discriminator": {"layers": [{"type": "dense", "units": 4, "activation": "leaky_relu"}, {"type": "dense", "units": 1}]}},
                 "training": {"epochs": 1, "batch_size": 8}}
                """))
            #expect(try await api.waitUntilFinished(id)["status"] == "succeeded")
            let refused = try expectError(try await api.get("/v1/jobs/\(id)/samples?n=129"), .unprocessableContent, naming: ["n"])
            #expect(refused.details.first?.message.contains("ask for at most 128") == true, "\(refused.details)")
            #expect(try await api.get("/v1/jobs/\(id)/samples?n=2").json()["samples"]?.array?.count == 2)
        }
    }

    @Test("Image samples come back as a PNG grid")
    func imageGrid() async throws {
        try await withServer(Self.workers) { api in
            let id = try await api.submit(try Self.imageSpec())
            let job = try await api.waitUntilFinished(id)
            #expect(job["status"] == "succeeded", "\(job.encodedString())")

            let json = try await api.get("/v1/jobs/\(id)/samples?n=3").json()
            #expect(json["shape"] == [1, 16, 16])
            #expect(json["samples"]?.array?.allSatisfy { $0.array?.count == 256 } == true)

            let response = try await api.get("/v1/jobs/\(id)/samples?n=10&format=png&seed=1")
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "image/png")
            let png = try PNGFile(response.data)
            // 10 images of 16×16 on ⌈√10⌉ = 4 columns and 3 rows, 2 pixels apart and around.
            #expect(png.width == 4 * (16 + 2) + 2 && png.height == 3 * (16 + 2) + 2)
            #expect(png.bitDepth == 8 && png.colorType == 0)
            #expect(png.chunkTypes == ["IHDR", "IDAT", "IEND"])
            #expect(png.scanlines.count == png.height * (png.width + 1))
            // Every scanline has filter 0; the padding is black; the sigmoid outputs are not all black.
            #expect((0..<png.height).allSatisfy { png.scanlines[$0 * (png.width + 1)] == 0 })
            #expect(png.pixel(x: 0, y: 0) == 0 && png.pixel(x: 1, y: 30) == 0)
            #expect(png.pixel(x: 2 + 8, y: 2 + 8) > 0)
            // The same seed draws the same grid.
            #expect(try await api.get("/v1/jobs/\(id)/samples?n=10&format=png&seed=1").data == response.data)
        }
    }

    @Test("A GAN spec that does not fit its data answers 422 naming both shapes; /validate counts both networks")
    func rejectedAndValidated() async throws {
        try await withServer { api in
            var spec = try Self.mixtureSpec()
            guard case .object(var fields) = spec else { return }
            fields["model"] = try parsedJSON("""
                {"generator": {"layers": [{"type": "dense", "units": 3}]},
                 "discriminator": {"layers": [{"type": "dense", "units": 4, "activation": "relu"}, {"type": "dense", "units": 2}]}}
                """)
            spec = .object(fields)
            let error = try expectError(try await api.post("/v1/jobs", json: spec), .unprocessableContent, code: "invalid",
                                        naming: ["[3]", "[2]", "must output 1 value"])
            #expect(Set(error.paths) == ["model.generator.layers", "model.discriminator.layers[1].units"])
            try await api.expectNoJob()

            let validated = try await api.post("/v1/jobs/validate", json: try Self.mixtureSpec())
            #expect(validated.status == .ok, "\(validated.text)")
            #expect(try validated.json()["parameters"]?.int == (8 * 32 + 32 + 32 * 2 + 2) + (2 * 32 + 32 + 32 + 1))

            // /samples of a supervised job, and of one that has not finished, is a 409.
            let moons = try await api.submit(try Specs.moons())
            try expectError(try await api.get("/v1/jobs/\(moons)/samples"), .conflict, naming: ["GAN"])
            let queued = try await api.submit(try Self.mixtureSpec())
            try expectError(try await api.get("/v1/jobs/\(queued)/samples"), .conflict, naming: ["queued"])
            try expectError(try await api.post("/v1/jobs/\(queued)/predict", body: #"{"inputs": [[0, 0]]}"#), .conflict, naming: ["samples"])
        }
    }
}

/// Parses JSON text (`JSONValue("…")` of a literal without interpolation would pick the string initializer).
func parsedJSON(_ text: String) throws -> JSONValue { try JSONValue.parse(Data(text.utf8)) }

/// Reads a PNG written by the server back: checks the signature and every chunk's CRC-32, and
/// inflates the zlib stream of stored blocks (checking its Adler-32).
struct PNGFile {
    var width = 0, height = 0, bitDepth = 0, colorType = 0
    var chunkTypes: [String] = []
    var scanlines: [UInt8] = []

    struct Invalid: Error, CustomStringConvertible { let description: String }

    init(_ data: Data) throws {
        let bytes = [UInt8](data)
        guard bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) else { throw Invalid(description: "no PNG signature") }
        func uint32(_ at: Int) -> Int { bytes[at..<(at + 4)].reduce(0) { $0 << 8 | Int($1) } }
        var zlib: [UInt8] = []
        var offset = 8
        while offset < bytes.count {
            let length = uint32(offset)
            let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
            let body = Array(bytes[(offset + 8)..<(offset + 8 + length)])
            guard uint32(offset + 8 + length) == Int(Self.crc32(Array(bytes[(offset + 4)..<(offset + 8)]) + body)) else {
                throw Invalid(description: "bad CRC in \(type)")
            }
            chunkTypes.append(type)
            if type == "IHDR" {
                width = body[0..<4].reduce(0) { $0 << 8 | Int($1) }
                height = body[4..<8].reduce(0) { $0 << 8 | Int($1) }
                bitDepth = Int(body[8])
                colorType = Int(body[9])
            }
            if type == "IDAT" { zlib += body }
            offset += 12 + length
        }
        guard zlib.count >= 6, (Int(zlib[0]) << 8 | Int(zlib[1])) % 31 == 0 else { throw Invalid(description: "bad zlib header") }
        var position = 2
        while true {
            let header = zlib[position]
            guard header & 0b110 == 0 else { throw Invalid(description: "not a stored block") }
            let length = Int(zlib[position + 1]) | Int(zlib[position + 2]) << 8
            let complement = Int(zlib[position + 3]) | Int(zlib[position + 4]) << 8
            guard length ^ complement == 0xFFFF else { throw Invalid(description: "LEN and NLEN disagree") }
            scanlines += zlib[(position + 5)..<(position + 5 + length)]
            position += 5 + length
            if header & 1 == 1 { break }
        }
        var a = 1, b = 0
        for byte in scanlines { a = (a + Int(byte)) % 65521; b = (b + a) % 65521 }
        let adler = zlib[position..<(position + 4)].reduce(0) { $0 << 8 | Int($1) }
        guard adler == b << 16 | a else { throw Invalid(description: "bad Adler-32") }
    }

    /// Greyscale value at (x, y).
    func pixel(x: Int, y: Int) -> UInt8 { scanlines[y * (width + 1) + 1 + x] }

    /// Bit by bit, independent of the server's table.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 1 ? 0xEDB8_8320 : 0) }
        }
        return ~crc
    }
}
