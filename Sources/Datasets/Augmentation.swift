import Foundation
import Tensors

/// One step of a job's `augmentation` list (API.md § Jobs), applied to training batches only.
///
/// Image steps act on samples of shape `[C, H, W]`, the same draw for every channel of a sample;
/// `gaussian_noise` and `mixup` work on any data. Pixels a geometric step uncovers are filled with 0.
public enum AugmentationStep: Sendable, Equatable {
    /// Shift by a whole number of pixels drawn uniformly in [−pixels, pixels], x and y independently.
    case randomShift(pixels: Int)
    /// Mirror left–right (`horizontal`) and/or top–bottom (`vertical`), each with probability 0.5.
    case randomFlip(horizontal: Bool, vertical: Bool)
    /// Rotate about the image center by an angle uniform in [−degrees, degrees] (positive is
    /// counter-clockwise, as torchvision), sampling bilinearly.
    case randomRotation(degrees: Double)
    /// torchvision's `RandomCrop(size, padding)` at the image's own size: pad every side with
    /// `padding` zeros and crop back at a uniformly random offset. (The same distribution as
    /// `randomShift(pixels: padding)`; the two names follow the two traditions.)
    case randomCrop(padding: Int)
    /// Zero a `size`×`size` square centered on a uniformly random pixel (DeVries & Taylor 2017); the
    /// square may reach over the edges, zeroing fewer pixels.
    case cutout(size: Int)
    /// Add N(0, std²) to every value.
    case gaussianNoise(std: Double)
    /// Per batch: λ ~ Beta(α, α) and a random permutation π; x_i ← λ·x_i + (1−λ)·x_π(i). The trainer
    /// mixes the losses the same way (`Augmenter.mixupPartners`, `Augmenter.mixupLambda`).
    case mixup(alpha: Double)

    /// The `type` of the step in a spec.
    public var typeName: String {
        switch self {
        case .randomShift: "random_shift"
        case .randomFlip: "random_flip"
        case .randomRotation: "random_rotation"
        case .randomCrop: "random_crop"
        case .cutout: "cutout"
        case .gaussianNoise: "gaussian_noise"
        case .mixup: "mixup"
        }
    }

    /// Every `type`, in the order API.md lists them.
    public static let typeNames = ["random_shift", "random_flip", "random_rotation", "random_crop", "cutout", "gaussian_noise", "mixup"]

    /// Whether the step needs samples of shape `[C, H, W]`.
    public var needsImages: Bool {
        switch self {
        case .randomShift, .randomFlip, .randomRotation, .randomCrop, .cutout: true
        case .gaussianNoise, .mixup: false
        }
    }

    /// A problem with a step's value that does not depend on the data; `field` is its spec key.
    public var parameterProblem: AugmentationIssue? {
        switch self {
        case .randomShift(let pixels) where pixels < 1:
            return AugmentationIssue(field: "pixels", message: "must be ≥ 1, got \(pixels)")
        case .randomFlip(false, false):
            return AugmentationIssue(field: "horizontal", message: "random_flip needs horizontal or vertical (or both) to be true")
        case .randomRotation(let degrees) where !(degrees > 0 && degrees <= 180):
            return AugmentationIssue(field: "degrees", message: "must be > 0 and ≤ 180, got \(format(degrees))")
        case .randomCrop(let padding) where padding < 1:
            return AugmentationIssue(field: "padding", message: "must be ≥ 1, got \(padding)")
        case .cutout(let size) where size < 1:
            return AugmentationIssue(field: "size", message: "must be ≥ 1, got \(size)")
        case .gaussianNoise(let std) where !(std > 0 && std.isFinite):
            return AugmentationIssue(field: "std", message: "must be > 0, got \(format(std))")
        case .mixup(let alpha) where !(alpha > 0 && alpha.isFinite):
            return AugmentationIssue(field: "alpha", message: "must be > 0, got \(format(alpha))")
        default:
            return nil
        }
    }

    /// A problem with the step on samples of `sampleShape` (the model's input shape): an image step
    /// on data that is not `[C, H, W]`, or a size that does not fit the image. Nil when it fits.
    public func shapeProblem(sampleShape: [Int]) -> AugmentationIssue? {
        guard needsImages else { return nil }
        guard sampleShape.count == 3, sampleShape.allSatisfy({ $0 >= 1 }) else {
            return AugmentationIssue(field: nil, message: "\(typeName) needs images [C, H, W]; the data's samples are \(sampleShape) — set model.input_shape\(Self.imageShapeHint(sampleShape))")
        }
        let height = sampleShape[1], width = sampleShape[2], side = min(height, width)
        switch self {
        case .randomShift(let pixels) where pixels >= side:
            return AugmentationIssue(field: "pixels", message: "must be less than the image's height and width (\(height)×\(width)), got \(pixels)")
        case .randomCrop(let padding) where padding >= side:
            return AugmentationIssue(field: "padding", message: "must be less than the image's height and width (\(height)×\(width)), got \(padding)")
        case .cutout(let size) where size > side:
            return AugmentationIssue(field: "size", message: "must be at most the image's height and width (\(height)×\(width)), got \(size)")
        default:
            return nil
        }
    }

    /// Every problem of a list of steps, with paths `augmentation[i].<field>`. With a `sampleShape`,
    /// also whether each step fits samples of that shape; without, only the data-independent checks.
    public static func problems(steps: [AugmentationStep], sampleShape: [Int]?, path: String = "augmentation") -> [AugmentationIssue] {
        var issues: [AugmentationIssue] = []
        func located(_ issue: AugmentationIssue, _ index: Int) -> AugmentationIssue {
            AugmentationIssue(field: "\(path)[\(index)]" + (issue.field.map { ".\($0)" } ?? ""), message: issue.message)
        }
        var mixupSeen = false
        for (index, step) in steps.enumerated() {
            if let problem = step.parameterProblem {
                issues.append(located(problem, index))
            } else if let sampleShape, let problem = step.shapeProblem(sampleShape: sampleShape) {
                issues.append(located(problem, index))
            }
            if case .mixup = step {
                if mixupSeen { issues.append(AugmentationIssue(field: "\(path)[\(index)]", message: "mixup may appear only once")) }
                mixupSeen = true
            }
        }
        return issues
    }

    /// ", e.g. [1, 8, 8]" when the samples' values make a square image of 1 or 3 channels.
    private static func imageShapeHint(_ sampleShape: [Int]) -> String {
        let count = sampleShape.reduce(1, *)
        for channels in [1, 3] where count % channels == 0 {
            let side = Int(Double(count / channels).squareRoot().rounded())
            if side >= 2, side * side * channels == count { return ", e.g. [\(channels), \(side), \(side)]" }
        }
        return ""
    }

    private func format(_ number: Double) -> String {
        number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }
}

/// A problem found in augmentation steps: `field` is the step's key (or a full path from
/// `AugmentationStep.problems`), nil for the step as a whole.
public struct AugmentationIssue: Sendable, Equatable, CustomStringConvertible {
    public var field: String?
    public var message: String
    public init(field: String?, message: String) {
        self.field = field
        self.message = message
    }
    public var description: String { field.map { "\($0): \(message)" } ?? message }
}

/// Applies a list of augmentation steps to batches of samples, in place, from one seeded stream
/// (`SeededGenerator(seed:purpose: "augmentation")`): the same seed and the same batches give the
/// same augmented batches.
///
/// Steps run in the listed order. Image steps and noise act sample by sample; `mixup` acts on the
/// batch as it stands at its place in the list. The steps see the values the model sees: with
/// standardized inputs a filled-in 0 is the feature's mean, and noise is in standardized units.
/// Per-pixel standardization does not commute with moving pixels (a moved pixel keeps the scale of
/// the place it came from), so image steps help most on unstandardized or per-channel standardized data.
///
/// A class, not a struct: it owns its scratch memory (sized on the first batch, grown only for a
/// larger one) and `mixupPartners` points into it. After the first `apply` it allocates nothing.
public final class Augmenter {
    public let steps: [AugmentationStep]
    public let sampleShape: [Int]
    /// The random stream; a checkpoint may save and restore it to resume the exact sequence.
    public var generator: SeededGenerator
    /// λ of the last batch's mixup (1 when there is no mixup step: every sample is itself).
    public private(set) var mixupLambda: Float = 1

    private let sampleSize: Int
    private let channels: Int, height: Int, width: Int
    private let mixupIndex: Int?
    /// One channel plane (H·W) for the geometric steps.
    private let plane: UnsafeMutableBufferPointer<Float>
    /// A copy of the batch for mixup, and the partners; grown on demand.
    private var batchCopy: UnsafeMutableBufferPointer<Float>
    private var partners: UnsafeMutableBufferPointer<Int32>
    private var partnerCount = 0

    /// - `sampleShape`: the shape of one sample (`[C, H, W]` when any step needs images); the
    ///   steps must fit it (`AugmentationStep.problems(steps:sampleShape:)` is empty).
    public init(steps: [AugmentationStep], sampleShape: [Int], seed: UInt64) {
        let issues = AugmentationStep.problems(steps: steps, sampleShape: sampleShape)
        precondition(issues.isEmpty, "invalid augmentation: \(issues.map(\.description).joined(separator: "; "))")
        self.steps = steps
        self.sampleShape = sampleShape
        generator = SeededGenerator(seed: seed, purpose: "augmentation")
        sampleSize = sampleShape.reduce(1, *)
        if sampleShape.count == 3 {
            (channels, height, width) = (sampleShape[0], sampleShape[1], sampleShape[2])
        } else {
            (channels, height, width) = (1, 1, sampleSize)
        }
        mixupIndex = steps.firstIndex { if case .mixup = $0 { return true } else { return false } }
        plane = .allocate(capacity: max(height * width, 1))
        plane.initialize(repeating: 0)
        batchCopy = .allocate(capacity: 1)
        partners = .allocate(capacity: 1)
    }

    deinit {
        plane.deallocate()
        batchCopy.deallocate()
        partners.deallocate()
    }

    /// For mixup: after `apply`, the partner π(i) of each sample of the batch (a permutation, which
    /// may leave a sample its own partner); nil when there is no mixup step. The trainer combines
    /// the loss as λ·L(x̃, y_i) + (1−λ)·L(x̃, y_π(i)). Valid until the next `apply`.
    public var mixupPartners: UnsafeBufferPointer<Int32>? {
        guard mixupIndex != nil else { return nil }
        return UnsafeBufferPointer(rebasing: partners[0..<partnerCount])
    }

    /// Augments `count` samples in place (row-major, `sampleShape` each).
    public func apply(to samples: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { partnerCount = 0; return }
        let end = mixupIndex ?? steps.count
        applyPerSample(steps[0..<end], to: samples, count: count)
        if let mixupIndex, case .mixup(let alpha) = steps[mixupIndex] {
            mixup(alpha: alpha, samples: samples, count: count)
            applyPerSample(steps[(mixupIndex + 1)...], to: samples, count: count)
        }
    }

    // MARK: Per-sample steps

    private func applyPerSample(_ run: ArraySlice<AugmentationStep>, to samples: UnsafeMutablePointer<Float>, count: Int) {
        guard !run.isEmpty else { return }
        for index in 0..<count {
            let sample = samples + index * sampleSize
            for step in run { apply(step, to: sample) }
        }
    }

    private func apply(_ step: AugmentationStep, to sample: UnsafeMutablePointer<Float>) {
        switch step {
        case .randomShift(let pixels), .randomCrop(let pixels):
            let dx = uniformInteger(-pixels...pixels), dy = uniformInteger(-pixels...pixels)
            for channel in 0..<channels { shift(sample + channel * height * width, dx: dx, dy: dy) }
        case .randomFlip(let horizontal, let vertical):
            let flipsX = horizontal && generator.next() >> 63 == 1
            let flipsY = vertical && generator.next() >> 63 == 1
            for channel in 0..<channels { flip(sample + channel * height * width, horizontal: flipsX, vertical: flipsY) }
        case .randomRotation(let degrees):
            let angle = (2 * generator.nextDouble() - 1) * degrees * .pi / 180
            for channel in 0..<channels { rotate(sample + channel * height * width, radians: angle) }
        case .cutout(let size):
            let centerY = uniformInteger(0...(height - 1)), centerX = uniformInteger(0...(width - 1))
            for channel in 0..<channels {
                Self.cutout(sample + channel * height * width, height: height, width: width, size: size, centerY: centerY, centerX: centerX)
            }
        case .gaussianNoise(let std):
            let scale = Float(std)
            var index = 0
            while index < sampleSize {  // two normals per draw
                let (a, b) = Self.normalPairFloat(using: &generator)
                sample[index] += scale * a
                if index + 1 < sampleSize { sample[index + 1] += scale * b }
                index += 2
            }
        case .mixup:
            preconditionFailure("mixup acts on the whole batch")
        }
    }

    /// One channel plane shifted by (dx, dy): out[y][x] = in[y − dy][x − dx], 0 outside.
    private func shift(_ values: UnsafeMutablePointer<Float>, dx: Int, dy: Int) {
        Self.shift(values, height: height, width: width, dx: dx, dy: dy, scratch: plane.baseAddress!)
    }

    private func flip(_ values: UnsafeMutablePointer<Float>, horizontal: Bool, vertical: Bool) {
        Self.flip(values, height: height, width: width, horizontal: horizontal, vertical: vertical)
    }

    private func rotate(_ values: UnsafeMutablePointer<Float>, radians: Double) {
        Self.rotate(values, height: height, width: width, radians: radians, scratch: plane.baseAddress!)
    }

    // MARK: Kernels on one H×W plane (internal for tests)

    static func shift(_ values: UnsafeMutablePointer<Float>, height: Int, width: Int, dx: Int, dy: Int,
                      scratch: UnsafeMutablePointer<Float>) {
        guard dx != 0 || dy != 0 else { return }
        scratch.update(from: values, count: height * width)
        // Columns x with 0 ≤ x − dx < width.
        let firstX = max(0, dx), lastX = min(width, width + dx)
        for y in 0..<height {
            let row = values + y * width
            let sourceY = y - dy
            guard sourceY >= 0, sourceY < height, firstX < lastX else {
                row.update(repeating: 0, count: width)
                continue
            }
            if firstX > 0 { row.update(repeating: 0, count: firstX) }
            (row + firstX).update(from: scratch + sourceY * width + firstX - dx, count: lastX - firstX)
            if lastX < width { (row + lastX).update(repeating: 0, count: width - lastX) }
        }
    }

    static func flip(_ values: UnsafeMutablePointer<Float>, height: Int, width: Int, horizontal: Bool, vertical: Bool) {
        if horizontal {
            for y in 0..<height {
                let row = values + y * width
                var left = 0, right = width - 1
                while left < right {
                    swap(&row[left], &row[right])
                    left += 1
                    right -= 1
                }
            }
        }
        if vertical {
            var top = 0, bottom = height - 1
            while top < bottom {
                let a = values + top * width, b = values + bottom * width
                for x in 0..<width { swap(&a[x], &b[x]) }
                top += 1
                bottom -= 1
            }
        }
    }

    /// Rotation by `radians` (counter-clockwise as displayed, rows running downwards) about the
    /// center ((W−1)/2, (H−1)/2): each output pixel samples the input bilinearly at the point the
    /// rotation maps onto it; neighbours outside the image count as 0 (torch's `grid_sample` with
    /// zero padding).
    static func rotate(_ values: UnsafeMutablePointer<Float>, height: Int, width: Int, radians: Double,
                       scratch: UnsafeMutablePointer<Float>) {
        guard radians != 0 else { return }
        scratch.update(from: values, count: height * width)
        let cosine = Float(cos(radians)), sine = Float(sin(radians))
        let centerX = Float(width - 1) / 2, centerY = Float(height - 1) / 2
        @inline(__always) func pixel(_ x: Int, _ y: Int) -> Float {
            x >= 0 && x < width && y >= 0 && y < height ? scratch[y * width + x] : 0
        }
        for y in 0..<height {
            let offsetY = Float(y) - centerY
            let row = values + y * width
            for x in 0..<width {
                let offsetX = Float(x) - centerX
                // The inverse rotation takes the output pixel back to where it came from.
                let sourceX = centerX + cosine * offsetX - sine * offsetY
                let sourceY = centerY + sine * offsetX + cosine * offsetY
                // Shifted by one so truncation is the floor; outside [−1, size) every neighbour is outside.
                let shiftedX = sourceX + 1, shiftedY = sourceY + 1
                guard shiftedX >= 0, shiftedY >= 0, shiftedX < Float(width + 1), shiftedY < Float(height + 1) else {
                    row[x] = 0
                    continue
                }
                let cellX = Int(shiftedX), cellY = Int(shiftedY)
                let fx = shiftedX - Float(cellX), fy = shiftedY - Float(cellY)
                let x0 = cellX - 1, y0 = cellY - 1
                let a, b, c, d: Float
                if x0 >= 0, y0 >= 0, x0 + 1 < width, y0 + 1 < height {  // all four neighbours inside
                    let p = scratch + y0 * width + x0
                    (a, b, c, d) = (p[0], p[1], p[width], p[width + 1])
                } else {
                    (a, b, c, d) = (pixel(x0, y0), pixel(x0 + 1, y0), pixel(x0, y0 + 1), pixel(x0 + 1, y0 + 1))
                }
                let top = a + (b - a) * fx, bottom = c + (d - c) * fx
                row[x] = top + (bottom - top) * fy
            }
        }
    }

    /// Zeroes rows centerY − size/2 ..< centerY − size/2 + size (and the same columns), clipped.
    static func cutout(_ values: UnsafeMutablePointer<Float>, height: Int, width: Int, size: Int, centerY: Int, centerX: Int) {
        let top = max(centerY - size / 2, 0), bottom = min(centerY - size / 2 + size, height)
        let left = max(centerX - size / 2, 0), right = min(centerX - size / 2 + size, width)
        guard top < bottom, left < right else { return }
        for y in top..<bottom { (values + y * width + left).update(repeating: 0, count: right - left) }
    }

    // MARK: Mixup

    private func mixup(alpha: Double, samples: UnsafeMutablePointer<Float>, count: Int) {
        ensureBatchCapacity(count)
        let lambda = Float(Self.beta(alpha, alpha, using: &generator))
        mixupLambda = lambda
        partnerCount = count
        for i in 0..<count { partners[i] = Int32(i) }
        for i in stride(from: count - 1, to: 0, by: -1) {  // Fisher–Yates, as SeededGenerator.shuffle
            let j = Int(generator.next() % UInt64(i + 1))
            partners.swapAt(i, j)
        }
        let copy = batchCopy.baseAddress!
        copy.update(from: samples, count: count * sampleSize)
        let other = 1 - lambda
        for i in 0..<count {
            let row = samples + i * sampleSize, partner = copy + Int(partners[i]) * sampleSize
            for k in 0..<sampleSize { row[k] = lambda * row[k] + other * partner[k] }
        }
    }

    private func ensureBatchCapacity(_ count: Int) {
        if batchCopy.count < count * sampleSize {
            batchCopy.deallocate()
            batchCopy = .allocate(capacity: count * sampleSize)
            batchCopy.initialize(repeating: 0)
        }
        if partners.count < count {
            partners.deallocate()
            partners = .allocate(capacity: count)
            partners.initialize(repeating: 0)
        }
    }

    // MARK: Random draws

    /// Uniform on a closed integer range (modulo bias below 2⁻⁵⁰ for the small ranges used here).
    private func uniformInteger(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(generator.next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    /// Two independent standard normals in Float, for noise: Marsaglia's polar method on two 24-bit
    /// uniforms from one 64-bit draw (no trigonometry; a draw is rejected 21 % of the time).
    @inline(__always)
    static func normalPairFloat(using generator: inout SeededGenerator) -> (Float, Float) {
        while true {
            let bits = generator.next()
            let u = Float(UInt32(truncatingIfNeeded: bits) >> 8) * 0x1p-23 - 1
            let v = Float(UInt32(truncatingIfNeeded: bits >> 32) >> 8) * 0x1p-23 - 1
            let s = u * u + v * v
            if s > 0, s < 1 {
                let factor = (-2 * log(s) / s).squareRoot()
                return (u * factor, v * factor)
            }
        }
    }

    /// Two independent standard normals in Double (Box–Muller), for the Gamma draws.
    static func normalPair(using generator: inout SeededGenerator) -> (Double, Double) {
        var u1 = generator.nextDouble()
        while u1 <= .leastNormalMagnitude { u1 = generator.nextDouble() }
        let u2 = generator.nextDouble()
        let radius = (-2 * log(u1)).squareRoot(), angle = 2 * Double.pi * u2
        return (radius * cos(angle), radius * sin(angle))
    }

    /// log of a Gamma(shape, 1) draw: Marsaglia & Tsang (2000) for shape ≥ 1; below 1, through
    /// Gamma(shape + 1)·U^(1/shape), kept in logs so tiny shapes do not underflow to 0.
    static func logGamma(shape: Double, using generator: inout SeededGenerator) -> Double {
        if shape < 1 {
            var u = generator.nextDouble()
            while u <= .leastNormalMagnitude { u = generator.nextDouble() }
            return logGamma(shape: shape + 1, using: &generator) + log(u) / shape
        }
        let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            let x = normalPair(using: &generator).0
            var v = 1 + c * x
            guard v > 0 else { continue }
            v = v * v * v
            let u = generator.nextDouble()
            let x2 = x * x
            if u < 1 - 0.0331 * x2 * x2 { return log(d) + log(v) }
            if u > 0, log(u) < 0.5 * x2 + d * (1 - v + log(v)) { return log(d) + log(v) }
        }
    }

    /// A Beta(a, b) draw, X / (X + Y) for X ~ Gamma(a), Y ~ Gamma(b).
    static func beta(_ a: Double, _ b: Double, using generator: inout SeededGenerator) -> Double {
        let logX = logGamma(shape: a, using: &generator), logY = logGamma(shape: b, using: &generator)
        return 1 / (1 + exp(logY - logX))
    }
}
