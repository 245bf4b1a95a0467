import Compression
import NeuralNetwork

/// One step of the spec's `compression` pipeline (API.md § Jobs), applied in order after training.
public enum CompressionStep: Sendable, Equatable {
    case prune(PruneSpec)
    /// Prune each prunable layer alone at each sparsity and evaluate on the validation set.
    case sensitivityAnalysis(sparsities: [Double])
    case quantize(QuantizeSpec)

    public var typeName: String {
        switch self {
        case .prune: "prune"
        case .sensitivityAnalysis: "sensitivity_analysis"
        case .quantize: "quantize"
        }
    }
}

public struct PruneSpec: Sendable, Equatable {
    public enum Method: String, Sendable, CaseIterable { case magnitude, taylor, random }
    public enum Structure: String, Sendable, CaseIterable { case unstructured, channel }
    public enum Scope: String, Sendable, CaseIterable { case local, global }
    public enum Amount: Sendable, Equatable {
        case fraction(Double)
        /// Per layer, the largest analysed sparsity whose own accuracy drop stays within `maxAccuracyDrop`.
        case auto(maxAccuracyDrop: Double)
    }
    /// Gradual pruning over the fine-tuning epochs (Zhu & Gupta's polynomial schedule).
    public struct Schedule: Sendable, Equatable {
        public var beginEpoch: Int
        public var endEpoch: Int
        public var frequency: Int
        public var initialSparsity: Double
        public var power: Double
    }

    public var method: Method = .magnitude
    public var structure: Structure = .unstructured
    public var scope: Scope = .local
    public var amount: Amount = .fraction(0.5)
    public var schedule: Schedule? = nil
    public var fineTuneEpochs: Int = 0
    /// Batches whose gradients score weights for `taylor`.
    public var taylorBatches: Int = 16
}

public struct QuantizeSpec: Sendable, Equatable {
    public enum Mode: String, Sendable, CaseIterable { case ptq, qat }
    public var bits: Int = 8
    public var scheme: QuantizationScheme = .symmetric
    public var granularity: QuantizationGranularity = .perTensor
    public var mode: Mode = .ptq
    public var qatEpochs: Int = 3
    /// Training batches the activation observers see before the ranges are fixed.
    public var calibrationBatches: Int = 32
}

/// `distillation`: train this job's model as a student of a finished job's model.
public struct DistillationSpec: Sendable, Equatable {
    public var teacherJob: String
    public var temperature: Double
    public var alpha: Double
}

extension QuantizationScheme: CaseIterable {
    public static var allCases: [QuantizationScheme] { [.symmetric, .affine] }
}

extension QuantizationGranularity: CaseIterable {
    public static var allCases: [QuantizationGranularity] { [.perTensor, .perChannel] }
}

// MARK: Reading and writing

extension CompressionStep {
    static let defaultSparsities: [Double] = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]

    /// Reads `compression` (absent or null: none), reporting every problem at `compression[i].<field>`.
    static func read(_ root: ObjectReader) -> [CompressionStep] {
        guard let items = root.array("compression") else { return [] }
        var steps: [CompressionStep] = []
        for (index, item) in items.enumerated() {
            let path = root.childPath("compression") + "[\(index)]"
            guard case .object(let fields) = item else {
                root.diagnostics.report(path, "must be an object such as {\"type\": \"prune\", \"amount\": 0.5}, got \(item.kindName)")
                continue
            }
            guard case .string(let type)? = fields["type"] else {
                root.diagnostics.report("\(path).type", "is required: prune, sensitivity_analysis or quantize")
                continue
            }
            switch type {
            case "prune":
                if let step = readPrune(item, path: path, diagnostics: root.diagnostics) { steps.append(.prune(step)) }
            case "sensitivity_analysis":
                guard let object = ObjectReader(item, path: path, diagnostics: root.diagnostics, allowedKeys: ["type", "sparsities"]) else { continue }
                let sparsities = object.doubleArray("sparsities") ?? defaultSparsities
                if sparsities.isEmpty { object.report("sparsities", "must list at least one sparsity") }
                if let bad = sparsities.first(where: { !(0..<1).contains($0) }) {
                    object.report("sparsities", "must each be in [0, 1), got \(bad)")
                }
                steps.append(.sensitivityAnalysis(sparsities: sparsities))
            case "quantize":
                if let step = readQuantize(item, path: path, diagnostics: root.diagnostics) { steps.append(.quantize(step)) }
            default:
                root.diagnostics.report("\(path).type", "must be prune, sensitivity_analysis or quantize, got \"\(type)\"")
            }
        }
        // A quantized model is the end of the line: pruning it again would undo its integer grid.
        if let quantize = steps.firstIndex(where: { $0.typeName == "quantize" }), quantize < steps.count - 1 {
            root.diagnostics.report(root.childPath("compression") + "[\(quantize)]", "quantize must be the last step of the pipeline")
        }
        return steps
    }

    private static func readPrune(_ item: JSONValue, path: String, diagnostics: SpecDiagnostics) -> PruneSpec? {
        guard let object = ObjectReader(item, path: path, diagnostics: diagnostics,
                                        allowedKeys: ["type", "method", "structure", "scope", "amount", "max_accuracy_drop", "schedule",
                                                      "fine_tune_epochs", "taylor_batches"])
        else { return nil }
        var spec = PruneSpec()
        spec.method = object.choice("method", default: .magnitude)
        spec.structure = object.choice("structure", default: .unstructured)
        spec.scope = object.choice("scope", default: .local)
        spec.fineTuneEpochs = object.int("fine_tune_epochs", default: 0, range: 0...10_000)
        spec.taylorBatches = object.int("taylor_batches", default: 16, range: 1...100_000)
        let maxDrop = object.double("max_accuracy_drop", default: 0.01) { (0...1).contains($0) ? nil : "must be in [0, 1]" }
        switch object.fields["amount"] {
        case .string("auto")?:
            spec.amount = .auto(maxAccuracyDrop: maxDrop)
            if spec.scope == .global { object.report("amount", "\"auto\" gives each layer its own sparsity, so it needs scope \"local\"") }
            if spec.structure == .channel { object.report("amount", "\"auto\" picks sparsities from an unstructured sensitivity analysis; use structure \"unstructured\" or a fraction") }
        case .number(let fraction)?:
            if !(0..<1).contains(fraction) { object.report("amount", "must be a fraction in [0, 1) or \"auto\", got \(fraction)") }
            spec.amount = .fraction(fraction)
        case nil, .null?:
            object.report("amount", "is required: the fraction of weights to prune, e.g. 0.5, or \"auto\"")
        case let other?:
            object.report("amount", "must be a fraction in [0, 1) or \"auto\", got \(other.briefDescription)")
        }
        if object.has("max_accuracy_drop"), case .fraction = spec.amount {
            object.report("max_accuracy_drop", "applies only with amount \"auto\"")
        }
        if let schedule = object.object("schedule", allowedKeys: ["type", "begin_epoch", "end_epoch", "frequency", "initial_sparsity", "power"]) {
            let type = schedule.string("type", default: "polynomial")
            if type != "polynomial" { schedule.report("type", "must be \"polynomial\", got \"\(type)\"") }
            let begin = schedule.int("begin_epoch", default: 0, range: 0...10_000)
            let end = schedule.int("end_epoch", default: spec.fineTuneEpochs, range: 0...10_000)
            if end < begin { schedule.report("end_epoch", "must be ≥ begin_epoch (\(begin)), got \(end)") }
            if end > spec.fineTuneEpochs {
                schedule.report("end_epoch", "is \(end), after the last fine-tuning epoch; set fine_tune_epochs ≥ \(end)")
            }
            let initial = schedule.double("initial_sparsity", default: 0) { (0..<1).contains($0) ? nil : "must be in [0, 1)" }
            let power = schedule.double("power", default: 3) { $0 > 0 ? nil : "must be > 0" }
            let frequency = schedule.int("frequency", default: 1, range: 1...10_000)
            spec.schedule = PruneSpec.Schedule(beginEpoch: begin, endEpoch: end, frequency: frequency, initialSparsity: initial, power: power)
            if case .auto = spec.amount { object.report("schedule", "gradual pruning needs a fraction amount, not \"auto\"") }
        }
        return spec
    }

    private static func readQuantize(_ item: JSONValue, path: String, diagnostics: SpecDiagnostics) -> QuantizeSpec? {
        guard let object = ObjectReader(item, path: path, diagnostics: diagnostics,
                                        allowedKeys: ["type", "bits", "scheme", "granularity", "mode", "qat_epochs", "calibration_batches"])
        else { return nil }
        var spec = QuantizeSpec()
        spec.bits = object.int("bits", default: 8, range: 0...64)
        if ![8, 4, 2, 1].contains(spec.bits) { object.report("bits", "must be 8, 4, 2 or 1, got \(spec.bits)") }
        spec.scheme = object.choice("scheme", default: .symmetric)
        spec.granularity = object.choice("granularity", default: .perTensor)
        spec.mode = object.choice("mode", default: .ptq)
        spec.qatEpochs = object.int("qat_epochs", default: 3, range: 1...10_000)
        if object.has("qat_epochs"), spec.mode == .ptq { object.report("qat_epochs", "applies only with mode \"qat\"") }
        spec.calibrationBatches = object.int("calibration_batches", default: 32, range: 1...100_000)
        return spec
    }

    public var jsonValue: JSONValue {
        switch self {
        case .prune(let spec):
            var fields: [String: JSONValue] = [
                "type": "prune", "method": JSONValue(spec.method.rawValue), "structure": JSONValue(spec.structure.rawValue),
                "scope": JSONValue(spec.scope.rawValue), "fine_tune_epochs": JSONValue(spec.fineTuneEpochs),
                "schedule": spec.schedule.map {
                    ["type": "polynomial", "begin_epoch": JSONValue($0.beginEpoch), "end_epoch": JSONValue($0.endEpoch),
                     "frequency": JSONValue($0.frequency), "initial_sparsity": JSONValue($0.initialSparsity), "power": JSONValue($0.power)]
                } ?? .null,
            ]
            switch spec.amount {
            case .fraction(let fraction): fields["amount"] = JSONValue(fraction)
            case .auto(let drop):
                fields["amount"] = "auto"
                fields["max_accuracy_drop"] = JSONValue(drop)
            }
            if spec.method == .taylor { fields["taylor_batches"] = JSONValue(spec.taylorBatches) }
            return .object(fields)
        case .sensitivityAnalysis(let sparsities):
            return ["type": "sensitivity_analysis", "sparsities": .array(sparsities.map { JSONValue($0) })]
        case .quantize(let spec):
            var fields: [String: JSONValue] = [
                "type": "quantize", "bits": JSONValue(spec.bits), "scheme": JSONValue(spec.scheme.rawValue),
                "granularity": JSONValue(spec.granularity.rawValue), "mode": JSONValue(spec.mode.rawValue),
                "calibration_batches": JSONValue(spec.calibrationBatches),
            ]
            if spec.mode == .qat { fields["qat_epochs"] = JSONValue(spec.qatEpochs) }
            return .object(fields)
        }
    }
}

extension DistillationSpec {
    static func read(_ root: ObjectReader) -> DistillationSpec? {
        guard let object = root.object("distillation", allowedKeys: ["teacher_job", "temperature", "alpha"]) else { return nil }
        // Every field is checked before giving up on a missing teacher: all problems in one answer.
        let temperature = object.double("temperature", default: 4) { $0 > 0 && $0 <= 100 ? nil : "must be in (0, 100]" }
        let alpha = object.double("alpha", default: 0.7) { (0...1).contains($0) ? nil : "must be in [0, 1]" }
        guard let teacher = object.optionalString("teacher_job") else {
            if !object.has("teacher_job") { object.report("teacher_job", "is required: the id of a succeeded job whose model teaches this one") }
            return nil
        }
        return DistillationSpec(teacherJob: teacher, temperature: temperature, alpha: alpha)
    }

    public var jsonValue: JSONValue {
        ["teacher_job": JSONValue(teacherJob), "temperature": JSONValue(temperature), "alpha": JSONValue(alpha)]
    }
}

extension JobSpec {
    /// Training epochs plus the compression pipeline's fine-tuning and quantization-aware epochs:
    /// what progress counts towards.
    public var plannedEpochs: Int {
        training.epochs + compression.reduce(0) { total, step in
            switch step {
            case .prune(let prune): total + prune.fineTuneEpochs
            case .quantize(let quantize): total + (quantize.mode == .qat ? quantize.qatEpochs : 0)
            case .sensitivityAnalysis: total
            }
        }
    }
}
