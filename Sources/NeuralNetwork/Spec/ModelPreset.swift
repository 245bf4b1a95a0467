import Foundation

/// Named architectures (`"model": {"preset": …}`), expanded to plain layers so everything after
/// parsing — shapes, training, the saved architecture — sees ordinary layers.
///
/// They are scaled for the small images the service trains on (8×8 digits to 32×32): 3×3
/// kernels with same padding, and two downsampling stages instead of five.
public enum ModelPreset: String, CaseIterable, Sendable {
    case mlp, lenet, mobilenet_v1, shufflenet_v1

    /// `classes` 0 means "as many outputs as the data has classes"; `JobSpec.resolved` fills it in.
    public func layers(widthMultiplier: Double, groups: Int, classes: Int) -> [LayerSpec] {
        func scaled(_ channels: Int, multipleOf step: Int = 8) -> Int {
            max(step, Int((Double(channels) * widthMultiplier / Double(step)).rounded()) * step)
        }
        let head: [LayerSpec] = [.dense(units: classes, activation: .linear, bias: true)]
        let same = Padding.same
        switch self {
        case .mlp:
            return [.dense(units: scaled(128), activation: .relu, bias: true),
                    .dense(units: scaled(64), activation: .relu, bias: true)] + head
        case .lenet:
            return [.conv2d(filters: scaled(6, multipleOf: 2), kernel: .square(3), stride: .square(1), padding: same, groups: 1, bias: true, activation: .relu),
                    .maxPool2d(kernel: .square(2), stride: .square(2)),
                    .conv2d(filters: scaled(16), kernel: .square(3), stride: .square(1), padding: same, groups: 1, bias: true, activation: .relu),
                    .maxPool2d(kernel: .square(2), stride: .square(2)),
                    .flatten,
                    .dense(units: scaled(120), activation: .relu, bias: true),
                    .dense(units: scaled(84, multipleOf: 4), activation: .relu, bias: true)] + head
        case .mobilenet_v1:
            // Stem conv → BN → ReLU, then depthwise-separable blocks, two of them with stride 2.
            return [.conv2d(filters: scaled(32), kernel: .square(3), stride: .square(1), padding: same, groups: 1, bias: false, activation: .linear),
                    .batchNorm, .activation(.relu),
                    .separableConv2d(filters: scaled(64), kernel: .square(3), stride: .square(1), padding: same),
                    .separableConv2d(filters: scaled(128), kernel: .square(3), stride: .square(2), padding: same),
                    .separableConv2d(filters: scaled(128), kernel: .square(3), stride: .square(1), padding: same),
                    .separableConv2d(filters: scaled(256), kernel: .square(3), stride: .square(2), padding: same),
                    .separableConv2d(filters: scaled(256), kernel: .square(3), stride: .square(1), padding: same),
                    .globalAvgPool2d] + head
        case .shufflenet_v1:
            // Every channel count a multiple of 4·groups, so each unit's bottleneck (a quarter of
            // its branch) splits evenly into the groups.
            let unit = 4 * groups
            let stem = scaled(24, multipleOf: unit)
            let stage1 = max(stem + unit, scaled(120, multipleOf: unit))
            let stage2 = max(stage1 + unit, scaled(240, multipleOf: unit))
            return [.conv2d(filters: stem, kernel: .square(3), stride: .square(1), padding: same, groups: 1, bias: false, activation: .linear),
                    .batchNorm, .activation(.relu),
                    .shuffleUnit(outChannels: stage1, groups: groups, stride: 2),
                    .shuffleUnit(outChannels: stage1, groups: groups, stride: 1),
                    .shuffleUnit(outChannels: stage2, groups: groups, stride: 2),
                    .shuffleUnit(outChannels: stage2, groups: groups, stride: 1),
                    .globalAvgPool2d] + head
        }
    }

    /// Reads `preset`, `width_multiplier`, `groups` and `classes` of a `model` object.
    static func read(_ model: ObjectReader) -> [LayerSpec]? {
        let preset: ModelPreset = model.choice("preset", default: .mlp)
        let width = model.double("width_multiplier", default: 1, check: { $0 > 0 && $0 <= 4 ? nil : "must be > 0 and ≤ 4" })
        let groups = model.int("groups", default: 3, range: 1...8)
        if model.has("groups"), preset != .shufflenet_v1 { model.report("groups", "only applies to the shufflenet_v1 preset") }
        let classes = model.int("classes", default: 0, range: 1...100_000)
        return preset.layers(widthMultiplier: width, groups: groups, classes: classes)
    }
}
