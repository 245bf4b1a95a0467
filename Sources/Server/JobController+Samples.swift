import Foundation
import Hummingbird
import JobStore
import NeuralNetwork
import Synchronization
import Training

/// `GET /v1/jobs/{id}/samples?n=64[&seed=…][&format=json|png]`: samples drawn from a GAN job's
/// generator, as JSON (`{"samples": [[…], …], "shape": [...], "seed": s}`, one row of
/// `shape.reduce(*)` values per sample) or, for image samples ([1, H, W] or [3, H, W]), as a PNG grid.
extension JobController {
    static let maxSamples = 1024
    /// Values in one answer (`n` × values per sample): 1 Mi floats, about 12 MB of JSON.
    static let maxSampleValues = 1 << 20

    @Sendable func samples(_ request: Request, context: AppRequestContext) async throws -> Response {
        let job = try requireJob(context)
        guard job.isGAN else {
            throw APIError.conflict("job \(job.id) is a supervised job; /samples draws from the generator of a GAN job (\"task\": \"gan\"). Use POST /v1/jobs/\(job.id)/predict")
        }
        let query = request.uri.queryParameters
        var issues: [SpecIssue] = []
        var count = 64
        if let text = query["n"] {
            if let parsed = Int(text), (1...Self.maxSamples).contains(parsed) { count = parsed }
            else { issues.append(SpecIssue(path: "n", message: "must be an integer between 1 and \(Self.maxSamples), got \"\(text)\"")) }
        }
        var seed = UInt64.random(in: 0...(1 << 53))  // exact as a JSON number
        if let text = query["seed"] {
            if let parsed = UInt64(text), parsed <= 1 << 53 { seed = parsed }
            else { issues.append(SpecIssue(path: "seed", message: "must be an integer between 0 and 2^53, got \"\(text)\"")) }
        }
        let format = query["format"].map(String.init) ?? "json"
        if format != "json" && format != "png" {
            issues.append(SpecIssue(path: "format", message: "must be json or png, got \"\(format)\""))
        }
        guard issues.isEmpty else { throw APIError.invalid(issues, message: "the query is invalid") }

        let url = try requireModelFile(job)
        let ganModels = self.ganModels
        // Loading and running a generator is CPU work: off the cooperative threads (see `offCooperativePool`).
        let model = try await offCooperativePool { try ganModels.model(jobId: job.id, url: url) }
        let shape = model.sampleShape
        if format == "png", !(shape.count == 3 && (shape[0] == 1 || shape[0] == 3)) {
            throw APIError.invalid([SpecIssue(path: "format", message: "a PNG grid needs image samples of shape [1, H, W] or [3, H, W]; this generator makes samples of shape \(shape). Use format=json")],
                                   message: "the query is invalid")
        }
        let width = shape.reduce(1, *)
        let most = Self.maxSampleValues / max(1, width)
        if count > most {
            let advice = most == 0 ? "this generator's samples are too large to serve; download the model instead" : "ask for at most \(most)"
            throw APIError.invalid([SpecIssue(path: "n", message: "\(count) samples of \(width) values each exceed the \(Self.maxSampleValues) values one answer may hold; \(advice)")],
                                   message: "the query is invalid")
        }
        let (drawn, noiseSeed) = (count, seed)
        let values = try await offCooperativePool { model.sample(count: drawn, seed: noiseSeed) }
        if format == "png" {
            let range = model.valueRange ?? (values.min() ?? 0, values.max() ?? 1)
            let png = PNGEncoder.grid(values, count: count, shape: shape, range: range)
            return Response(status: .ok, headers: [.contentType: "image/png", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(bytes: png)))
        }
        // Building and encoding a million JSON numbers takes a while: off the cooperative threads too.
        return try await offCooperativePool {
            let rows: [JSONValue] = (0..<drawn).map { index in
                .array(values[(index * width)..<((index + 1) * width)].map { JSONValue($0) })
            }
            return jsonResponse(["samples": .array(rows), "shape": JSONValue(shape), "n": JSONValue(drawn), "seed": JSONValue(Double(noiseSeed))])
        }
    }

    /// `/predict` of a GAN job: a generator takes noise, not inputs.
    func refusePredictionOfGAN(_ job: JobRecord) throws {
        guard job.isGAN else { return }
        throw APIError(status: .conflict, code: "gan_job",
                       message: "job \(job.id) is a GAN job: its generator takes no inputs to predict from; draw samples with GET /v1/jobs/\(job.id)/samples?n=64 (&format=png for images)")
    }
}

extension JobRecord {
    /// Whether the stored spec says `"task": "gan"`.
    var isGAN: Bool {
        guard spec.contains("\"gan\""), case .object(let fields)? = try? JSONValue.parse(Data(spec.utf8)) else { return false }
        return fields["task"] == "gan"
    }
}

/// GAN models loaded for `/samples`, kept so repeated calls don't re-read the file.
final class GANModelCache: Sendable {
    private let models = Mutex<[String: GANModel]>([:])
    private let capacity = 16

    func model(jobId: String, url: URL) throws -> GANModel {
        if let cached = models.withLock({ $0[jobId] }) { return cached }
        let model = try GANModel.load(try Data(contentsOf: url))
        models.withLock { cache in
            if cache.count >= capacity, let victim = cache.keys.first { cache.removeValue(forKey: victim) }
            cache[jobId] = model
        }
        return model
    }

    func forget(_ jobId: String) { models.withLock { _ = $0.removeValue(forKey: jobId) } }
}

extension Dictionary where Key == String, Value == JSONValue {
    /// The object with the non-nil values of `extra` added: a GAN job's metrics rows carry
    /// `d_loss`, `g_loss`, `d_real` and `d_fake`; a supervised job's rows stay as they were.
    func adding(_ extra: KeyValuePairs<String, Double?>) -> JSONValue {
        var fields = self
        for (key, value) in extra { if let value { fields[key] = JSONValue(value) } }
        return .object(fields)
    }
}
