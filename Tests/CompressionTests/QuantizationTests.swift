import Compression
import Foundation
import ReferenceFixtures
import Tensors
import Testing

@Suite("Quantization")
struct QuantizationTests {
    func fixtureCases(_ kind: String) throws -> [[String: Any]] {
        let cases = try ReferenceFixtures.cases("quantization").filter { $0.string("kind") == kind }
        try #require(!cases.isEmpty, "quantization.json has no \(kind) case")
        return cases
    }

    /// The bit width and scheme of a fixture's integer range, checked against `QuantizationParameters.range`.
    func schemeAndBits(_ fixture: [String: Any]) throws -> (QuantizationScheme, Int) {
        let quantMin = try #require(fixture.int("quant_min")), quantMax = try #require(fixture.int("quant_max"))
        let scheme: QuantizationScheme = fixture["symmetric"] as? Bool == true ? .symmetric : .affine
        let bits = (quantMax - quantMin + 1).trailingZeroBitCount
        let range = QuantizationParameters.range(bits: bits, scheme: scheme)
        #expect(Int(range.min) == quantMin && Int(range.max) == quantMax, "\(scheme) \(bits)-bit range")
        return (scheme, bits)
    }

    /// Fake-quantized values must equal torch's, except that an input lying (within Float32 noise) on a rounding tie
    /// may land one quantization step away.
    func expectFakeQuantized(_ actual: [Float], _ expected: [Double], input: [Float], scales: [Float], _ label: String) {
        let width = input.count / scales.count
        for i in input.indices {
            let scale = Double(scales[i / width])
            let difference = abs(Double(actual[i]) - expected[i])
            if difference <= 1e-6 * max(1, abs(expected[i])) { continue }
            let steps = Double(input[i]) / scale
            let isTie = abs(abs(steps - steps.rounded(.down)) - 0.5) < 1e-4
            #expect(isTie && difference <= scale * (1 + 1e-5),
                    "\(label)[\(i)]: \(actual[i]) vs torch \(expected[i]) for input \(input[i])")
        }
    }

    // MARK: Against torch.ao.quantization

    @Test("per-tensor observers give torch's scale and zero point, and fake quantization its values and STE gradient")
    func perTensorMatchesTorch() throws {
        for fixture in try fixtureCases("per_tensor") {
            let (scheme, bits) = try schemeAndBits(fixture)
            let label = "\(scheme) \(bits)-bit"
            let input = try fixture.tensor("input").floats
            var observer = MinMaxObserver(channels: nil)
            observer.observe(input)
            let parameters = observer.parameters(bits: bits, scheme: scheme)
            let expectedScale = try #require(fixture.double("scale"))
            #expect(!parameters.isPerChannel)
            #expect(abs(Double(parameters.scales[0]) - expectedScale) <= 1e-6 * expectedScale, "\(label) scale")
            #expect(parameters.zeroPoints == [Int32(try #require(fixture.int("zero_point")))], "\(label) zero point")

            var output = [Float](repeating: .nan, count: input.count)
            var clampMask = [Float](repeating: .nan, count: input.count)
            input.withUnsafeBufferPointer { input in
                output.withUnsafeMutableBufferPointer { output in
                    clampMask.withUnsafeMutableBufferPointer { clampMask in
                        FakeQuantization.apply(input, parameters: parameters, output: output, clampMask: clampMask)
                    }
                }
            }
            expectFakeQuantized(output, try fixture.tensor("fake_quantized").data, input: input,
                                scales: parameters.scales, label)
            #expect(clampMask == (try fixture.tensor("ste_grad_for_ones").floats), "\(label) STE gradient")
            #expect(FakeQuantization.apply(input, parameters: parameters) == output, "\(label) array form")
        }
    }

    @Test("per-channel observers give torch's scales and zero points, and fake quantization its values")
    func perChannelMatchesTorch() throws {
        for fixture in try fixtureCases("per_channel") {
            try #require(fixture.int("axis") == 0, "only axis 0 is supported")
            let (scheme, bits) = try schemeAndBits(fixture)
            let input = try fixture.tensor("input")
            var observer = MinMaxObserver(channels: input.shape[0])
            observer.observe(input.floats)
            let parameters = observer.parameters(bits: bits, scheme: scheme)
            let expectedScales = try #require(fixture["scale"] as? [Double])
            #expect(parameters.isPerChannel)
            #expect(parameters.scales.count == expectedScales.count)
            for (actual, expected) in zip(parameters.scales, expectedScales) {
                #expect(abs(Double(actual) - expected) <= 1e-6 * expected, "scale \(actual) vs torch \(expected)")
            }
            #expect(parameters.zeroPoints.map(Int.init) == (try #require(fixture["zero_point"] as? [Int])))
            expectFakeQuantized(FakeQuantization.apply(input.floats, parameters: parameters),
                                try fixture.tensor("fake_quantized").data, input: input.floats,
                                scales: parameters.scales, "per channel")
        }
    }

    @Test("XNOR binarization is alpha = mean |row| times the sign, as in the reference")
    func binaryMatchesReference() throws {
        for fixture in try fixtureCases("binary_xnor") {
            let input = try fixture.tensor("input")
            let rows = input.shape[0]
            let binarized = BinaryQuantization.binarize(input.floats, rows: rows)
            let error = maxAbsError(binarized, try fixture.tensor("output").data)
            #expect(error <= 1e-6, "max abs error \(error)")

            // The packed form (one sign bit per weight and one alpha per row) restores the same values.
            let restored = BinaryQuantization.unpack(signBits: BinaryQuantization.signBits(input.floats),
                                                     scales: BinaryQuantization.scales(input.floats, rows: rows),
                                                     count: input.floats.count)
            #expect(restored == binarized)
        }
    }

    // MARK: Beyond the fixtures

    @Test("zero counts as positive in XNOR binarization, and sign bits pack LSB first")
    func binaryZeroAndBitOrder() {
        let weights: [Float] = [0, -1, 2, -3, 0, 0, 0, 0, -1]  // 9 weights: the sign bits spill into a second byte
        #expect(BinaryQuantization.signBits(weights) == [0b1111_0101, 0b0000_0000])
        #expect(BinaryQuantization.scales(weights, rows: 3) == [1, 1, Float(1) / 3])
        #expect(BinaryQuantization.binarize(weights, rows: 3) == [1, -1, 1, -1, 1, 1, Float(1) / 3, Float(1) / 3, -Float(1) / 3])
    }

    @Test("codes pack and unpack losslessly at 8, 4, 2 and 1 bits, odd counts included",
          arguments: [8, 4, 2, 1])
    func packingRoundTrips(bits: Int) {
        for scheme in [QuantizationScheme.symmetric, .affine] {
            let (quantMin, quantMax) = QuantizationParameters.range(bits: bits, scheme: scheme)
            let allCodes = Array(quantMin...quantMax)
            for count in [0, 1, 3, 7, 9, 13, 255, 256, 257] {
                let codes = (0..<count).map { allCodes[($0 * 7 + count) % allCodes.count] }
                let bytes = PackedCodes.pack(codes, bits: bits, quantMin: quantMin)
                #expect(bytes.count == (count * bits + 7) / 8, "\(scheme) \(bits)-bit, \(count) codes: byte count")
                #expect(PackedCodes.unpack(bytes, count: count, bits: bits, quantMin: quantMin) == codes,
                        "\(scheme) \(bits)-bit, \(count) codes")
            }
        }
    }

    @Test("packed layout: 8-bit codes are int8/uint8 bytes, smaller codes are offset by quantMin and LSB first")
    func packedLayout() {
        #expect(PackedCodes.pack([-128, -1, 0, 127], bits: 8, quantMin: -128) == [0x80, 0xFF, 0x00, 0x7F])
        #expect(PackedCodes.pack([0, 200, 255], bits: 8, quantMin: 0) == [0x00, 0xC8, 0xFF])
        #expect(PackedCodes.pack([1, 2, 3], bits: 4, quantMin: 0) == [0x21, 0x03])
        #expect(PackedCodes.pack([-8, 7, 0], bits: 4, quantMin: -8) == [0xF0, 0x08])
        #expect(PackedCodes.pack([0, 1, 2, 3, 3], bits: 2, quantMin: 0) == [0b11_10_01_00, 0b11])
        #expect(PackedCodes.pack([-2, 1], bits: 2, quantMin: -2) == [0b11_00])
    }

    @Test("2-bit ranges, scales and levels")
    func twoBitQuantization() {
        #expect(QuantizationParameters.range(bits: 2, scheme: .symmetric) == (-2, 1))
        #expect(QuantizationParameters.range(bits: 2, scheme: .affine) == (0, 3))
        #expect(QuantizationParameters.range(bits: 8, scheme: .symmetric) == (-128, 127))
        #expect(QuantizationParameters.range(bits: 4, scheme: .affine) == (0, 15))

        // Symmetric: scale = 3 / ((1 − (−2)) / 2) = 2, levels −4, −2, 0, 2.
        let symmetric = QuantizationParameters.calculate(min: -1, max: 3, bits: 2, scheme: .symmetric)
        #expect(symmetric.scale == 2 && symmetric.zeroPoint == 0)
        // Affine: scale = 4 / 3, zp = 0 − round(−0.75) = 1, levels −4/3, 0, 4/3, 8/3.
        let affine = QuantizationParameters.calculate(min: -1, max: 3, bits: 2, scheme: .affine)
        #expect(affine.scale == Float(4) / 3 && affine.zeroPoint == 1)

        let input: [Float] = [-5, -1, -0.5, 0, 0.6, 1, 2.9, 3, 9]
        let parameters = QuantizationParameters(bits: 2, scheme: .affine, scales: [affine.scale], zeroPoints: [affine.zeroPoint])
        let output = FakeQuantization.apply(input, parameters: parameters)
        let levels = Set([-1, 0, 1, 2].map { Float($0) * affine.scale })
        #expect(Set(output).isSubset(of: levels), "\(output)")
        #expect(output[3] == 0, "zero is exact")
        #expect(FakeQuantization.quantize(input, parameters: parameters) == [0, 0, 1, 1, 1, 2, 3, 3, 3])
    }

    @Test("per-channel affine quantization gives each row its own scale and zero point")
    func perChannelAffine() {
        // Three rows with very different ranges, one entirely positive (its range is widened to include 0).
        let input: [Float] = [-0.2, 0.1, 0.05, 0.3,
                              -8, 2, 1, -3,
                              5, 10, 7.5, 6]
        var observer = MinMaxObserver(channels: 3)
        observer.observe(input)
        #expect(observer.minimum == [-0.2, -8, 5] && observer.maximum == [0.3, 2, 10])
        let parameters = observer.parameters(bits: 8, scheme: .affine)
        #expect(parameters.isPerChannel && parameters.granularity == .perChannel)
        #expect((parameters.quantMin, parameters.quantMax) == (0, 255))
        for row in 0..<3 {
            let expected = QuantizationParameters.calculate(min: observer.minimum[row], max: observer.maximum[row],
                                                            bits: 8, scheme: .affine)
            #expect(parameters.scales[row] == expected.scale && parameters.zeroPoints[row] == expected.zeroPoint)
        }
        #expect(parameters.zeroPoints[2] == 0, "an all-positive row starts its range at 0")
        #expect(parameters.scales[2] == Float(10) / 255)

        let output = FakeQuantization.apply(input, parameters: parameters)
        for row in 0..<3 {
            // Each row on its own, quantized per tensor with its row's parameters, gives the same values.
            let rowInput = Array(input[row * 4..<row * 4 + 4])
            let rowParameters = QuantizationParameters(bits: 8, scheme: .affine, scales: [parameters.scales[row]],
                                                       zeroPoints: [parameters.zeroPoints[row]])
            #expect(Array(output[row * 4..<row * 4 + 4]) == FakeQuantization.apply(rowInput, parameters: rowParameters))
            for (x, y) in zip(rowInput, output[row * 4..<row * 4 + 4]) {
                #expect(abs(x - y) <= parameters.scales[row] / 2 * 1.001, "row \(row): \(x) → \(y)")
            }
        }
        let codes = FakeQuantization.quantize(input, parameters: parameters)
        #expect(FakeQuantization.dequantize(codes, parameters: parameters) == output)
    }

    @Test("the STE mask is 0 exactly where a value was clamped, and apply works in place")
    func clampMaskMarksClampedValues() {
        let parameters = QuantizationParameters(bits: 4, scheme: .symmetric, scales: [0.5], zeroPoints: [0])
        // Codes: −20, −8.5→−8 (tie to even, in range), −4, 0, 7, 7.4→7, 7.5→8 (clamped), 100.
        var values: [Float] = [-10, -4.25, -2, 0, 3.5, 3.7, 3.75, 50]
        var clampMask = [Float](repeating: -1, count: values.count)
        values.withUnsafeMutableBufferPointer { values in
            clampMask.withUnsafeMutableBufferPointer { clampMask in
                FakeQuantization.apply(UnsafeBufferPointer(values), parameters: parameters, output: values, clampMask: clampMask)
            }
        }
        #expect(values == [-4, -4, -2, 0, 3.5, 3.5, 3.5, 3.5])
        #expect(clampMask == [0, 1, 1, 1, 1, 1, 0, 0])
    }

    @Test("quantize then dequantize equals fake quantization")
    func quantizeDequantizeEqualsFakeQuantization() {
        var generator = SeededGenerator(seed: 9, purpose: "test")
        let input = (0..<60).map { _ in generator.uniform(-3, 3) }
        for scheme in [QuantizationScheme.symmetric, .affine] {
            for bits in [2, 4, 8] {
                var observer = MinMaxObserver(channels: 5)
                observer.observe(input)
                let parameters = observer.parameters(bits: bits, scheme: scheme)
                let codes = FakeQuantization.quantize(input, parameters: parameters)
                #expect(codes.allSatisfy { (parameters.quantMin...parameters.quantMax).contains($0) })
                #expect(FakeQuantization.dequantize(codes, parameters: parameters)
                    == FakeQuantization.apply(input, parameters: parameters), "\(scheme) \(bits)-bit")
            }
        }
    }

    @Test("observers keep a running range; empty and all-zero ranges fall back as torch does")
    func observerEdgeCases() throws {
        var observer = MinMaxObserver(channels: nil)
        #expect(observer.parameters(bits: 8, scheme: .affine).scales == [1], "nothing observed: torch's scale 1")
        observer.observe([0, 0, 0])
        let zero = observer.parameters(bits: 8, scheme: .affine)
        #expect(zero.scales == [.ulpOfOne] && zero.zeroPoints == [0], "all zeros: scale is Float32 eps")
        observer.observe([-1, 0.5])
        observer.observe([2, .nan])
        #expect(observer.minimum == [-1] && observer.maximum == [2], "the range accumulates; NaN is skipped")

        let parameters = observer.parameters(bits: 8, scheme: .symmetric)
        let decoded = try JSONDecoder().decode(QuantizationParameters.self, from: JSONEncoder().encode(parameters))
        #expect(decoded == parameters)
    }
}
