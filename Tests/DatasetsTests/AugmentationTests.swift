import Foundation
import Tensors
import Testing
@testable import Datasets

/// Augments `batch` (row-major samples) in place and returns it.
private func augmented(_ batch: [Float], _ augmenter: Augmenter, count: Int) -> [Float] {
    var values = batch
    values.withUnsafeMutableBufferPointer { augmenter.apply(to: $0.baseAddress!, count: count) }
    return values
}

/// A plane of `height`×`width` values in [0.5, 1.5), none of them 0.
private func randomPlane(height: Int, width: Int, seed: UInt64) -> [Float] {
    var random = SeededGenerator(seed: seed)
    return (0..<(height * width)).map { _ in 0.5 + random.nextFloat() }
}

/// out[y][x] = in[y − dy][x − dx], 0 outside: the definition the shift kernel must meet.
private func referenceShift(_ plane: [Float], height: Int, width: Int, dx: Int, dy: Int) -> [Float] {
    var result = [Float](repeating: 0, count: height * width)
    for y in 0..<height {
        for x in 0..<width where (0..<height).contains(y - dy) && (0..<width).contains(x - dx) {
            result[y * width + x] = plane[(y - dy) * width + x - dx]
        }
    }
    return result
}

/// The position of the only non-zero value of a plane.
private func litPixel(_ plane: ArraySlice<Float>, width: Int) -> (x: Int, y: Int)? {
    let lit = plane.indices.filter { plane[$0] != 0 }
    guard lit.count == 1 else { return nil }
    let index = lit[0] - plane.startIndex
    return (index % width, index / width)
}

private func kernel(_ plane: [Float], _ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> [Float] {
    var values = plane
    var scratch = [Float](repeating: .nan, count: plane.count)
    values.withUnsafeMutableBufferPointer { values in
        scratch.withUnsafeMutableBufferPointer { body(values.baseAddress!, $0.baseAddress!) }
    }
    return values
}

@Suite("Augmentation")
struct AugmentationTests {
    // MARK: Steps and their checks

    @Test("type names follow the spec, and only the geometric steps and cutout need images")
    func names() {
        let steps: [AugmentationStep] = [.randomShift(pixels: 1), .randomFlip(horizontal: true, vertical: false),
                                         .randomRotation(degrees: 10), .randomCrop(padding: 2), .cutout(size: 3),
                                         .gaussianNoise(std: 0.1), .mixup(alpha: 0.2)]
        #expect(steps.map(\.typeName) == AugmentationStep.typeNames)
        #expect(steps.map(\.needsImages) == [true, true, true, true, true, false, false])
    }

    @Test("image steps on samples that are not [C, H, W] name the shape and model.input_shape")
    func imageStepsNeedImages() {
        let issues = AugmentationStep.problems(steps: [.gaussianNoise(std: 0.1), .randomShift(pixels: 1), .mixup(alpha: 1)],
                                               sampleShape: [64])
        #expect(issues == [AugmentationIssue(field: "augmentation[1]",
                                             message: "random_shift needs images [C, H, W]; the data's samples are [64] — set model.input_shape, e.g. [1, 8, 8]")])
        let sequence = AugmentationStep.problems(steps: [.cutout(size: 2)], sampleShape: [32, 16])
        #expect(sequence.count == 1 && sequence[0].message.contains("the data's samples are [32, 16] — set model.input_shape"))
        #expect(!sequence[0].message.contains("e.g."))
        #expect(AugmentationStep.problems(steps: [.gaussianNoise(std: 1), .mixup(alpha: 1)], sampleShape: [5]).isEmpty)
    }

    @Test("sizes must fit the image; values must be in range; mixup at most once")
    func ranges() {
        let shape = [3, 8, 10]
        func paths(_ steps: [AugmentationStep], _ shape: [Int]? = [3, 8, 10]) -> [String] {
            AugmentationStep.problems(steps: steps, sampleShape: shape).compactMap(\.field)
        }
        #expect(paths([.randomShift(pixels: 7), .randomCrop(padding: 7), .cutout(size: 8)]).isEmpty)
        #expect(paths([.randomShift(pixels: 8), .randomCrop(padding: 8), .cutout(size: 9)])
                == ["augmentation[0].pixels", "augmentation[1].padding", "augmentation[2].size"])
        let message = AugmentationStep.randomShift(pixels: 8).shapeProblem(sampleShape: shape)?.message
        #expect(message == "must be less than the image's height and width (8×10), got 8")
        #expect(paths([.randomShift(pixels: 0), .randomRotation(degrees: 0), .randomRotation(degrees: 180.5), .randomRotation(degrees: 180),
                       .randomCrop(padding: 0), .cutout(size: 0), .gaussianNoise(std: 0), .gaussianNoise(std: .infinity),
                       .mixup(alpha: -1), .randomFlip(horizontal: false, vertical: false)], nil)
                == ["augmentation[0].pixels", "augmentation[1].degrees", "augmentation[2].degrees", "augmentation[4].padding",
                    "augmentation[5].size", "augmentation[6].std", "augmentation[7].std", "augmentation[8].alpha",
                    "augmentation[9].horizontal"])
        #expect(paths([.mixup(alpha: 1), .gaussianNoise(std: 1), .mixup(alpha: 2)], [4]) == ["augmentation[2]"])
    }

    // MARK: Shift and crop

    @Test("the shift kernel moves every pixel by (dx, dy) and fills with 0", arguments: [(5, 7), (6, 6), (1, 4)])
    func shiftKernel(height: Int, width: Int) {
        let plane = randomPlane(height: height, width: width, seed: 1)
        for dy in -3...3 {
            for dx in -3...3 {
                let shifted = kernel(plane) { Augmenter.shift($0, height: height, width: width, dx: dx, dy: dy, scratch: $1) }
                #expect(shifted == referenceShift(plane, height: height, width: width, dx: dx, dy: dy), "dx \(dx), dy \(dy)")
            }
        }
    }

    @Test("random_shift and random_crop move the whole sample, every channel alike, by a drawn offset within ±pixels",
          arguments: [AugmentationStep.randomShift(pixels: 2), .randomCrop(padding: 2)])
    func randomShift(step: AugmentationStep) throws {
        // Channel 0: one lit pixel in the middle, to read the offset; channel 1: content to check.
        let side = 9, plane = side * side
        let content = randomPlane(height: side, width: side, seed: 2)
        var sample = [Float](repeating: 0, count: plane) + content
        sample[4 * side + 4] = 1
        let samples = 200
        let batch = Array([[Float]](repeating: sample, count: samples).joined())
        let out = augmented(batch, Augmenter(steps: [step], sampleShape: [2, side, side], seed: 3), count: samples)
        var offsets: [Int: Int] = [:]
        for index in 0..<samples {
            let start = index * 2 * plane
            let lit = try #require(litPixel(out[start..<(start + plane)], width: side))
            let dx = lit.x - 4, dy = lit.y - 4
            #expect(abs(dx) <= 2 && abs(dy) <= 2)
            offsets[(dy + 2) * 5 + dx + 2, default: 0] += 1
            #expect(Array(out[(start + plane)..<(start + 2 * plane)]) == referenceShift(content, height: side, width: side, dx: dx, dy: dy))
        }
        #expect(offsets.count == 25, "all 25 offsets of ±2 appear in 200 draws")
        #expect(offsets.values.allSatisfy { $0 < 25 }, "roughly uniform: 8 expected each")
    }

    @Test("random_crop with padding p draws the same offsets as random_shift by p (torchvision's RandomCrop at the image's size)")
    func cropIsShift() {
        let batch = (0..<(10 * 36)).map { Float($0 % 7) }
        let shifted = augmented(batch, Augmenter(steps: [.randomShift(pixels: 1)], sampleShape: [1, 6, 6], seed: 4), count: 10)
        let cropped = augmented(batch, Augmenter(steps: [.randomCrop(padding: 1)], sampleShape: [1, 6, 6], seed: 4), count: 10)
        #expect(shifted == cropped)
        #expect(shifted != batch)
    }

    // MARK: Flip

    @Test("flipping twice is the identity; each flip mirrors its own axis")
    func flipKernel() {
        let plane: [Float] = [1, 2, 3,
                              4, 5, 6]
        func flipped(_ values: [Float], _ horizontal: Bool, _ vertical: Bool) -> [Float] {
            kernel(values) { values, _ in Augmenter.flip(values, height: 2, width: 3, horizontal: horizontal, vertical: vertical) }
        }
        #expect(flipped(plane, true, false) == [3, 2, 1, 6, 5, 4])
        #expect(flipped(plane, false, true) == [4, 5, 6, 1, 2, 3])
        #expect(flipped(plane, true, true) == [6, 5, 4, 3, 2, 1])
        for (h, v) in [(true, false), (false, true), (true, true)] {
            #expect(flipped(flipped(plane, h, v), h, v) == plane)
        }
    }

    @Test("random_flip mirrors each sample with probability ½ per enabled axis, every channel alike")
    func randomFlip() {
        let plane: [Float] = [1, 2, 3, 4, 5, 6]  // 2×3
        let sample = plane + plane.map { $0 * 10 }
        let count = 400
        let batch = Array([[Float]](repeating: sample, count: count).joined())
        func outcomes(horizontal: Bool, vertical: Bool) -> [String: Int] {
            let out = augmented(batch, Augmenter(steps: [.randomFlip(horizontal: horizontal, vertical: vertical)],
                                                 sampleShape: [2, 2, 3], seed: 5), count: count)
            var seen: [String: Int] = [:]
            for index in 0..<count {
                let channel0 = Array(out[(index * 12)..<(index * 12 + 6)]), channel1 = Array(out[(index * 12 + 6)..<(index * 12 + 12)])
                #expect(channel1 == channel0.map { $0 * 10 })
                let name = switch channel0 {
                case plane: "none"
                case [3, 2, 1, 6, 5, 4]: "horizontal"
                case [4, 5, 6, 1, 2, 3]: "vertical"
                case [6, 5, 4, 3, 2, 1]: "both"
                default: "other"
                }
                seen[name, default: 0] += 1
            }
            return seen
        }
        let horizontal = outcomes(horizontal: true, vertical: false)
        #expect(Set(horizontal.keys) == ["none", "horizontal"])
        #expect((160...240).contains(horizontal["horizontal"] ?? 0))  // 200 ± 4σ
        let vertical = outcomes(horizontal: false, vertical: true)
        #expect(Set(vertical.keys) == ["none", "vertical"])
        let both = outcomes(horizontal: true, vertical: true)
        #expect(Set(both.keys) == ["none", "horizontal", "vertical", "both"])
        #expect(both.values.allSatisfy { (70...130).contains($0) })  // 100 ± 4σ each
    }

    // MARK: Rotation

    @Test("rotating by 90° turns the image counter-clockwise exactly, for odd and even sizes", arguments: [5, 6])
    func rotationKernelQuarterTurn(side: Int) {
        let plane = randomPlane(height: side, width: side, seed: 6)
        let rotated = kernel(plane) { Augmenter.rotate($0, height: side, width: side, radians: .pi / 2, scratch: $1) }
        // Counter-clockwise as displayed: the right column becomes the top row.
        for y in 0..<side {
            for x in 0..<side {
                #expect(abs(rotated[y * side + x] - plane[x * side + (side - 1 - y)]) < 1e-5, "(\(x), \(y))")
            }
        }
        #expect(rotated[0] == plane[side - 1] || abs(rotated[0] - plane[side - 1]) < 1e-5)  // top-left ← top-right
    }

    @Test("rotation is about the center: a lit center pixel stays, and its bilinear spread is point-symmetric")
    func rotationKernelCenter() {
        var plane = [Float](repeating: 0, count: 25)
        plane[12] = 1
        let rotated = kernel(plane) { Augmenter.rotate($0, height: 5, width: 5, radians: 0.3, scratch: $1) }
        #expect(rotated[12] == 1)
        #expect(rotated.allSatisfy { $0 >= 0 && $0 < 0.1 || $0 == 1 })
        #expect((0..<25).allSatisfy { abs(rotated[$0] - rotated[24 - $0]) < 1e-6 })
        #expect(rotated[13] > 0 && rotated[11] > 0)  // the right and left neighbours sample a little of the center
    }

    @Test("random_rotation by a tiny angle is nearly the identity; by a large one it changes the image")
    func randomRotation() {
        let plane = randomPlane(height: 7, width: 7, seed: 7)
        let batch = Array([[Float]](repeating: plane, count: 20).joined())
        let tiny = augmented(batch, Augmenter(steps: [.randomRotation(degrees: 0.01)], sampleShape: [1, 7, 7], seed: 8), count: 20)
        // Corners move by at most 3√2 · 0.01° ≈ 0.00074 px; values differ by < 1 per pixel.
        #expect(zip(tiny, batch).allSatisfy { abs($0 - $1) < 1e-3 })
        #expect(tiny != batch)
        let large = augmented(batch, Augmenter(steps: [.randomRotation(degrees: 90)], sampleShape: [1, 7, 7], seed: 8), count: 20)
        #expect(zip(large, batch).map { abs($0 - $1) }.reduce(0, +) > 20)
    }

    @Test("random_rotation turns every channel of a sample by the same angle")
    func rotationChannels() {
        let plane = randomPlane(height: 6, width: 6, seed: 9)
        let sample = plane + plane + plane
        let out = augmented(sample + sample, Augmenter(steps: [.randomRotation(degrees: 30)], sampleShape: [3, 6, 6], seed: 10), count: 2)
        for index in 0..<2 {
            let base = index * 108
            #expect(Array(out[base..<(base + 36)]) == Array(out[(base + 36)..<(base + 72)]))
            #expect(Array(out[base..<(base + 36)]) == Array(out[(base + 72)..<(base + 108)]))
        }
    }

    // MARK: Cutout

    @Test("the cutout kernel zeroes exactly size² pixels inside the image, fewer over an edge")
    func cutoutKernel() {
        let ones = [Float](repeating: 1, count: 100)
        func zeros(size: Int, y: Int, x: Int) -> Int {
            kernel(ones) { values, _ in Augmenter.cutout(values, height: 10, width: 10, size: size, centerY: y, centerX: x) }
                .filter { $0 == 0 }.count
        }
        #expect(zeros(size: 4, y: 5, x: 5) == 16)
        #expect(zeros(size: 3, y: 5, x: 5) == 9)
        #expect(zeros(size: 4, y: 0, x: 5) == 8)  // rows −2…1 clipped to 0…1
        #expect(zeros(size: 3, y: 9, x: 9) == 4)
        #expect(zeros(size: 10, y: 5, x: 5) == 100)
    }

    @Test("random cutout zeroes one square (clipped at the edges), the same in every channel")
    func randomCutout() {
        let side = 12, count = 300
        let batch = [Float](repeating: 1, count: count * 2 * side * side)
        let out = augmented(batch, Augmenter(steps: [.cutout(size: 4)], sampleShape: [2, side, side], seed: 11), count: count)
        var whole = 0, clipped = 0
        for index in 0..<count {
            let start = index * 2 * side * side
            let channel0 = Array(out[start..<(start + side * side)]), channel1 = Array(out[(start + side * side)..<(start + 2 * side * side)])
            #expect(channel0 == channel1)
            let zeroed = channel0.indices.filter { channel0[$0] == 0 }
            let xs = zeroed.map { $0 % side }, ys = zeroed.map { $0 / side }
            guard let left = xs.min(), let right = xs.max(), let top = ys.min(), let bottom = ys.max() else { continue }
            // A filled rectangle of at most 4×4.
            #expect(zeroed.count == (right - left + 1) * (bottom - top + 1))
            #expect(right - left < 4 && bottom - top < 4)
            if zeroed.count == 16 { whole += 1 } else { clipped += 1 }
        }
        #expect(whole > 100 && clipped > 50)  // centers 2…9 of 0…11 keep the square inside: (8/12)² ≈ 44 %
    }

    // MARK: Noise

    @Test("gaussian_noise adds N(0, std²) to every value, on any data")
    func noise() {
        let count = 100, width = 500
        let out = augmented([Float](repeating: 3, count: count * width),
                            Augmenter(steps: [.gaussianNoise(std: 0.5)], sampleShape: [width], seed: 12), count: count)
        let deviations = out.map { Double($0) - 3 }
        let mean = deviations.reduce(0, +) / Double(deviations.count)
        let std = (deviations.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(deviations.count)).squareRoot()
        #expect(abs(mean) < 0.01)  // σ/√n = 0.0016
        #expect(abs(std - 0.5) < 0.01)
        let within = deviations.filter { abs($0) < 0.5 }.count
        #expect(abs(Double(within) / Double(deviations.count) - 0.6827) < 0.01)
    }

    @Test("noise on an odd-sized sample touches every value")
    func noiseOddSize() {
        let out = augmented([Float](repeating: 0, count: 3 * 7), Augmenter(steps: [.gaussianNoise(std: 1)], sampleShape: [7], seed: 13), count: 3)
        #expect(out.allSatisfy { $0 != 0 })
    }

    // MARK: Mixup

    @Test("mixup blends each sample with its partner: λ in (0, 1), partners a permutation")
    func mixup() throws {
        let count = 16, width = 5
        let batch = (0..<(count * width)).map { Float($0 / width) }  // sample i is all i
        let augmenter = Augmenter(steps: [.mixup(alpha: 1)], sampleShape: [width], seed: 14)
        for _ in 0..<5 {
            let out = augmented(batch, augmenter, count: count)
            let lambda = augmenter.mixupLambda
            #expect(lambda > 0 && lambda < 1)
            let partners = try #require(augmenter.mixupPartners).map(Int.init)
            #expect(partners.sorted() == Array(0..<count))
            for i in 0..<count {
                let expected = lambda * Float(i) + (1 - lambda) * Float(partners[i])
                for k in 0..<width { #expect(abs(out[i * width + k] - expected) < 1e-5) }
            }
        }
        #expect(Augmenter(steps: [.gaussianNoise(std: 1)], sampleShape: [width], seed: 0).mixupPartners == nil)
    }

    @Test("mixup's partners follow the batch size, smaller last batch included")
    func mixupBatchSizes() throws {
        let augmenter = Augmenter(steps: [.mixup(alpha: 0.4)], sampleShape: [2], seed: 15)
        for count in [8, 3, 8] {
            _ = augmented([Float](repeating: 1, count: 16), augmenter, count: count)
            #expect(try #require(augmenter.mixupPartners).map(Int.init).sorted() == Array(0..<count))
        }
    }

    @Test("λ ~ Beta(α, α): mean ½ and variance 1 / (4(2α + 1))", arguments: [0.2, 0.4, 1.0, 2.0])
    func betaMoments(alpha: Double) {
        var generator = SeededGenerator(seed: 16)
        let draws = (0..<20_000).map { _ in Augmenter.beta(alpha, alpha, using: &generator) }
        #expect(draws.allSatisfy { $0 >= 0 && $0 <= 1 })
        let mean = draws.reduce(0, +) / Double(draws.count)
        let variance = draws.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(draws.count)
        let expected = 1 / (4 * (2 * alpha + 1))
        #expect(abs(mean - 0.5) < 0.015)
        #expect(abs(variance - expected) / expected < 0.05)
    }

    @Test("Gamma draws (Marsaglia–Tsang) have mean and variance k", arguments: [0.3, 1.0, 4.5])
    func gammaMoments(shape: Double) {
        var generator = SeededGenerator(seed: 17)
        let draws = (0..<40_000).map { _ in exp(Augmenter.logGamma(shape: shape, using: &generator)) }
        let mean = draws.reduce(0, +) / Double(draws.count)
        let variance = draws.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(draws.count)
        #expect(abs(mean - shape) / shape < 0.03)
        #expect(abs(variance - shape) / shape < 0.08)
    }

    @Test("a tiny α gives λ near 0 or 1, never NaN")
    func betaTinyAlpha() {
        var generator = SeededGenerator(seed: 18)
        let draws = (0..<1000).map { _ in Augmenter.beta(0.01, 0.01, using: &generator) }
        #expect(draws.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 })
        #expect(draws.filter { $0 < 0.01 || $0 > 0.99 }.count > 900)
    }

    // MARK: Pipelines and determinism

    @Test("the same seed gives the same batches; another seed, other batches; the stream moves on between batches")
    func determinism() {
        let steps: [AugmentationStep] = [.randomShift(pixels: 1), .randomFlip(horizontal: true, vertical: true), .randomRotation(degrees: 20),
                                         .cutout(size: 2), .gaussianNoise(std: 0.1), .mixup(alpha: 0.2)]
        let batch = randomPlane(height: 8 * 2, width: 36, seed: 19)  // 8 samples of [2, 6, 6]
        func run(seed: UInt64) -> [[Float]] {
            let augmenter = Augmenter(steps: steps, sampleShape: [2, 6, 6], seed: seed)
            return (0..<3).map { _ in augmented(batch, augmenter, count: 8) + [augmenter.mixupLambda] }
        }
        let first = run(seed: 20)
        #expect(first == run(seed: 20))
        #expect(first != run(seed: 21))
        #expect(first[0] != first[1] && first[1] != first[2])
    }

    @Test("steps run in order: noise before mixup is blended with the partner's noise")
    func order() throws {
        let batch = [Float](repeating: 0, count: 6 * 3)
        // The same seed draws the same noise first; mixup's draws come after it.
        let noise = augmented(batch, Augmenter(steps: [.gaussianNoise(std: 1)], sampleShape: [3], seed: 22), count: 6)
        let augmenter = Augmenter(steps: [.gaussianNoise(std: 1), .mixup(alpha: 1)], sampleShape: [3], seed: 22)
        let mixed = augmented(batch, augmenter, count: 6)
        let partners = try #require(augmenter.mixupPartners).map(Int.init), lambda = augmenter.mixupLambda
        for i in 0..<6 {
            for k in 0..<3 {
                #expect(abs(mixed[i * 3 + k] - (lambda * noise[i * 3 + k] + (1 - lambda) * noise[partners[i] * 3 + k])) < 1e-5)
            }
        }
    }

    @Test("an empty batch is left alone")
    func emptyBatch() {
        let augmenter = Augmenter(steps: [.mixup(alpha: 1)], sampleShape: [3], seed: 23)
        var nothing: [Float] = [0]
        nothing.withUnsafeMutableBufferPointer { augmenter.apply(to: $0.baseAddress!, count: 0) }
        #expect(nothing == [0])
        #expect(augmenter.mixupPartners?.count == 0)
    }

    @Test("a larger batch after the first grows the scratch; the same size again reuses it")
    func growing() throws {
        let augmenter = Augmenter(steps: [.randomRotation(degrees: 10), .mixup(alpha: 1)], sampleShape: [1, 4, 4], seed: 24)
        _ = augmented([Float](repeating: 1, count: 2 * 16), augmenter, count: 2)
        let wide = augmented((0..<(10 * 16)).map { Float($0 % 16) }, augmenter, count: 10)
        #expect(wide.allSatisfy { $0.isFinite })
        let partners = try #require(augmenter.mixupPartners)
        #expect(partners.count == 10)
        let address = partners.baseAddress
        _ = augmented([Float](repeating: 1, count: 10 * 16), augmenter, count: 10)
        #expect(augmenter.mixupPartners?.baseAddress == address)
    }
}
