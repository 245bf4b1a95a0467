import Datasets
import NeuralNetwork

/// The spec's `augmentation`: an ordered list of steps applied to training batches only
/// (API.md § Jobs), e.g. `[{"type": "random_shift", "pixels": 1}, {"type": "random_rotation", "degrees": 10}]`.
///
/// Reading checks each step on its own (`augmentation[i].<field>`); whether image steps fit the
/// data needs the model's input shape, so `problems(steps:sampleShape:)` runs when the spec is
/// resolved against a dataset.
public enum AugmentationSpec {
    /// Defaults of each type's fields (what `jsonValue` writes back for a field left out).
    public static let defaultShiftPixels = 2
    public static let defaultRotationDegrees = 15.0
    public static let defaultCropPadding = 4
    public static let defaultCutoutSize = 4
    public static let defaultNoiseStd = 0.1
    public static let defaultMixupAlpha = 0.2

    static let keysByType: [String: [String]] = [
        "random_shift": ["pixels"],
        "random_flip": ["horizontal", "vertical"],
        "random_rotation": ["degrees"],
        "random_crop": ["padding"],
        "cutout": ["size"],
        "gaussian_noise": ["std"],
        "mixup": ["alpha"],
    ]

    /// Reads `augmentation` of the spec (absent or null: no augmentation), reporting every problem.
    /// Nil only when the value is not a list at all.
    public static func read(_ root: ObjectReader) -> [AugmentationStep]? {
        guard let value = root.fields["augmentation"], value != .null else { return [] }
        return parse(value, path: root.childPath("augmentation"), diagnostics: root.diagnostics)
    }

    /// Reads a list of steps at `path` (a study's parameter or a saved spec may hold one on its own).
    public static func parse(_ value: JSONValue, path: String, diagnostics: SpecDiagnostics) -> [AugmentationStep]? {
        guard case .array(let items) = value else {
            diagnostics.report(path, "must be a list of steps such as [{\"type\": \"random_shift\", \"pixels\": 2}], got \(value.kindName)")
            return nil
        }
        var steps: [AugmentationStep] = []
        for (index, item) in items.enumerated() {
            if let step = readStep(item, path: "\(path)[\(index)]", diagnostics: diagnostics) { steps.append(step) }
        }
        // What the step readers cannot see on their own: a second mixup.
        for issue in AugmentationStep.problems(steps: steps, sampleShape: nil, path: path)
        where issue.message.hasPrefix("mixup may appear") {
            diagnostics.report(issue.field ?? path, issue.message)
        }
        return steps
    }

    private static func readStep(_ item: JSONValue, path: String, diagnostics: SpecDiagnostics) -> AugmentationStep? {
        let choices = AugmentationStep.typeNames.joined(separator: ", ")
        guard case .object(let fields) = item else {
            diagnostics.report(path, "must be an object such as {\"type\": \"random_flip\"}, got \(item.kindName)")
            return nil
        }
        guard let typeValue = fields["type"], typeValue != .null else {
            diagnostics.report("\(path).type", "is required: one of \(choices)")
            return nil
        }
        guard case .string(let type) = typeValue, let keys = keysByType[type] else {
            diagnostics.report("\(path).type", "must be one of \(choices), got \(typeValue.briefDescription)")
            return nil
        }
        guard let step = ObjectReader(item, path: path, diagnostics: diagnostics, allowedKeys: ["type"] + keys) else { return nil }
        let reported = diagnostics.issues.count
        let result: AugmentationStep
        switch type {
        case "random_shift":
            result = .randomShift(pixels: step.int("pixels", default: defaultShiftPixels, range: 1...1024))
        case "random_flip":
            result = .randomFlip(horizontal: step.bool("horizontal", default: true), vertical: step.bool("vertical", default: false))
        case "random_rotation":
            result = .randomRotation(degrees: step.double("degrees", default: defaultRotationDegrees,
                                                          check: { $0 > 0 && $0 <= 180 ? nil : "must be > 0 and ≤ 180" }))
        case "random_crop":
            result = .randomCrop(padding: step.int("padding", default: defaultCropPadding, range: 1...1024))
        case "cutout":
            result = .cutout(size: step.int("size", default: defaultCutoutSize, range: 1...1024))
        case "gaussian_noise":
            result = .gaussianNoise(std: step.double("std", default: defaultNoiseStd, check: Check.positive))
        default:  // mixup
            result = .mixup(alpha: step.double("alpha", default: defaultMixupAlpha, check: Check.positive))
        }
        // Checks beyond a single field's range (a flip that flips nothing), unless a field was already reported.
        if diagnostics.issues.count == reported, let problem = result.parameterProblem {
            step.report(problem.field ?? "type", problem.message)
        }
        return result
    }

    /// Whether each step fits samples of `sampleShape` (the resolved `model.input_shape`): image steps
    /// need `[C, H, W]`, and shifts, padding and cutout sizes must fit inside the image.
    public static func problems(steps: [AugmentationStep], sampleShape: [Int]) -> [SpecIssue] {
        AugmentationStep.problems(steps: steps, sampleShape: sampleShape).map {
            SpecIssue(path: $0.field ?? "augmentation", message: $0.message)
        }
    }

    /// The list as the filled-in spec shows it, every field present.
    public static func jsonValue(_ steps: [AugmentationStep]) -> JSONValue {
        .array(steps.map(jsonValue))
    }

    public static func jsonValue(_ step: AugmentationStep) -> JSONValue {
        var fields: [String: JSONValue] = ["type": JSONValue(step.typeName)]
        switch step {
        case .randomShift(let pixels): fields["pixels"] = JSONValue(pixels)
        case .randomFlip(let horizontal, let vertical): fields["horizontal"] = .bool(horizontal); fields["vertical"] = .bool(vertical)
        case .randomRotation(let degrees): fields["degrees"] = JSONValue(degrees)
        case .randomCrop(let padding): fields["padding"] = JSONValue(padding)
        case .cutout(let size): fields["size"] = JSONValue(size)
        case .gaussianNoise(let std): fields["std"] = JSONValue(std)
        case .mixup(let alpha): fields["alpha"] = JSONValue(alpha)
        }
        return .object(fields)
    }
}

extension AugmentationStep {
    /// The step as the filled-in spec shows it.
    public var jsonValue: JSONValue { AugmentationSpec.jsonValue(self) }
}
