import Tensors

// Uniform quantization with torch.ao.quantization's semantics: observers record min and max,
// `QuantizationParameters.calculate` turns them into scale and zero point, and `FakeQuantization`
// rounds values onto that grid (forward) and tells the backward pass where gradient may pass.
//
//     q = clamp(round_half_even(x · (1/scale)) + zp, qmin, qmax)      integer code
//     x̂ = (q − zp) · scale                                            fake-quantized value
//     ∂x̂/∂x ≈ 1 where the unclamped code was inside [qmin, qmax], else 0   (straight-through estimator)

public enum QuantizationScheme: String, Sendable, Codable { case symmetric, affine }
public enum QuantizationGranularity: String, Sendable, Codable { case perTensor = "per_tensor", perChannel = "per_channel" }

/// Integer range and scale/zero point of a quantized tensor, per tensor (one scale) or per channel along axis 0.
public struct QuantizationParameters: Sendable, Equatable, Codable {
    public var bits: Int
    public var scheme: QuantizationScheme
    public var quantMin: Int32
    public var quantMax: Int32
    public var scales: [Float]       // 1 for per tensor, channels for per channel
    public var zeroPoints: [Int32]

    public init(bits: Int, scheme: QuantizationScheme, quantMin: Int32, quantMax: Int32,
                scales: [Float], zeroPoints: [Int32]) {
        precondition(!scales.isEmpty && scales.count == zeroPoints.count,
                     "\(scales.count) scales and \(zeroPoints.count) zero points")
        precondition(quantMin < quantMax, "empty integer range [\(quantMin), \(quantMax)]")
        self.bits = bits
        self.scheme = scheme
        self.quantMin = quantMin
        self.quantMax = quantMax
        self.scales = scales
        self.zeroPoints = zeroPoints
    }

    /// Parameters over the scheme's full `bits`-bit range.
    public init(bits: Int, scheme: QuantizationScheme, scales: [Float], zeroPoints: [Int32]) {
        let range = Self.range(bits: bits, scheme: scheme)
        self.init(bits: bits, scheme: scheme, quantMin: range.min, quantMax: range.max, scales: scales, zeroPoints: zeroPoints)
    }

    /// One scale per channel. (A one-channel tensor quantized per channel is the same as per tensor.)
    public var isPerChannel: Bool { scales.count > 1 }
    public var granularity: QuantizationGranularity { isPerChannel ? .perChannel : .perTensor }

    /// torch's ranges: symmetric → signed [-2^(b-1), 2^(b-1)-1] (qint8 style), affine → unsigned [0, 2^b - 1] (quint8 style).
    /// (1 bit is allowed but better served by BinaryQuantization's ±alpha.)
    public static func range(bits: Int, scheme: QuantizationScheme) -> (min: Int32, max: Int32) {
        precondition((1...16).contains(bits), "quantization takes 1 to 16 bits, got \(bits)")
        switch scheme {
        case .symmetric: return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        case .affine: return (0, (1 << bits) - 1)
        }
    }

    /// torch's MinMaxObserver._calculate_qparams, in Float32 as torch computes it:
    ///
    ///     min₋ = min(min, 0), max₊ = max(max, 0)      the range always contains 0, so 0 is exact
    ///     symmetric: scale = max(−min₋, max₊) / ((qmax − qmin) / 2), zp = 0 (signed range)
    ///     affine:    scale = (max₊ − min₋) / (qmax − qmin), zp = clamp(qmin − round(min₋ / scale), qmin, qmax)
    ///     scale = max(scale, Float32 eps)             an all-zero tensor still gets a usable scale
    ///
    /// Nothing observed (min > max) gives torch's default scale 1, zero point 0.
    public static func calculate(min: Float, max: Float, bits: Int, scheme: QuantizationScheme) -> (scale: Float, zeroPoint: Int32) {
        let (quantMin, quantMax) = range(bits: bits, scheme: scheme)
        guard min <= max else { return (1, 0) }
        let minNegative = Swift.min(min, 0)
        let maxPositive = Swift.max(max, 0)
        switch scheme {
        case .symmetric:
            let scale = Swift.max(-minNegative, maxPositive) / (Float(quantMax - quantMin) / 2)
            return (Swift.max(scale, .ulpOfOne), 0)
        case .affine:
            let scale = Swift.max((maxPositive - minNegative) / Float(quantMax - quantMin), .ulpOfOne)
            let zeroPoint = Float(quantMin) - (minNegative / scale).rounded(.toNearestOrEven)
            return (scale, Int32(Swift.min(Swift.max(zeroPoint, Float(quantMin)), Float(quantMax))))
        }
    }
}

/// torch.ao.quantization.MinMaxObserver / PerChannelMinMaxObserver(ch_axis 0): running min and max over everything observed.
public struct MinMaxObserver: Sendable {
    /// Per channel (or a single entry per tensor); +∞ / −∞ until something is observed.
    public private(set) var minimum: [Float]
    public private(set) var maximum: [Float]

    /// `channels` nil = per tensor.
    public init(channels: Int?) {
        precondition(channels.map { $0 > 0 } ?? true, "a per-channel observer needs at least one channel")
        minimum = [Float](repeating: .infinity, count: channels ?? 1)
        maximum = [Float](repeating: -.infinity, count: channels ?? 1)
    }

    /// Folds `values` into the running range; for per-channel the buffer is [channels, rest] row-major.
    /// NaNs are skipped.
    public mutating func observe(_ values: UnsafeBufferPointer<Float>) {
        let channels = minimum.count
        precondition(values.count % channels == 0, "\(values.count) values do not split into \(channels) channels")
        let width = values.count / channels
        for channel in 0..<channels {
            var low = minimum[channel], high = maximum[channel]
            for value in values[channel * width..<(channel + 1) * width] {
                low = Swift.min(low, value)
                high = Swift.max(high, value)
            }
            minimum[channel] = low
            maximum[channel] = high
        }
    }

    public mutating func observe(_ values: [Float]) {
        values.withUnsafeBufferPointer { observe($0) }
    }

    /// Scale and zero point per tensor or per channel from the range observed so far.
    public func parameters(bits: Int, scheme: QuantizationScheme) -> QuantizationParameters {
        let calculated = zip(minimum, maximum).map {
            QuantizationParameters.calculate(min: $0, max: $1, bits: bits, scheme: scheme)
        }
        return QuantizationParameters(bits: bits, scheme: scheme, scales: calculated.map(\.scale),
                                      zeroPoints: calculated.map(\.zeroPoint))
    }
}

public enum FakeQuantization {
    /// q = clamp(round_half_even(x · (1/scale)) + zp, qmin, qmax); x̂ = (q - zp) · scale — torch's
    /// fake_quantize_per_tensor_affine / per_channel_affine (axis 0; the buffer is [channels, rest] row-major).
    /// Multiplies by the Float32 reciprocal of the scale, as torch's CPU kernel does, so ties round the same way.
    /// Writes x̂ into `output` (the same count; it may be the input buffer itself); when `clampMask` is given,
    /// writes 1 where the code was inside [qmin, qmax] before clamping and 0 where it was clamped: the
    /// straight-through estimator passes gradient only where 1 (the fixture's `ste_grad_for_ones`).
    /// Allocates nothing: it runs in every QAT forward pass.
    public static func apply(_ input: UnsafeBufferPointer<Float>, parameters: QuantizationParameters,
                             output: UnsafeMutableBufferPointer<Float>, clampMask: UnsafeMutableBufferPointer<Float>?) {
        let channels = parameters.scales.count
        precondition(output.count == input.count && (clampMask?.count ?? input.count) == input.count,
                     "fake quantization buffers differ in size")
        precondition(input.count % channels == 0, "\(input.count) values do not split into \(channels) channels")
        let width = input.count / channels
        let quantMin = Float(parameters.quantMin), quantMax = Float(parameters.quantMax)
        for channel in 0..<channels {
            let scale = parameters.scales[channel]
            let inverseScale = 1 / scale
            let zeroPoint = Float(parameters.zeroPoints[channel])
            let start = channel * width
            if let clampMask {
                for i in start..<start + width {
                    let code = zeroPoint + (input[i] * inverseScale).rounded(.toNearestOrEven)
                    let clamped = Float.minimum(Float.maximum(code, quantMin), quantMax)
                    output[i] = (clamped - zeroPoint) * scale
                    clampMask[i] = code >= quantMin && code <= quantMax ? 1 : 0
                }
            } else {
                for i in start..<start + width {
                    let code = zeroPoint + (input[i] * inverseScale).rounded(.toNearestOrEven)
                    output[i] = (Float.minimum(Float.maximum(code, quantMin), quantMax) - zeroPoint) * scale
                }
            }
        }
    }

    public static func apply(_ input: [Float], parameters: QuantizationParameters) -> [Float] {
        var output = [Float](repeating: 0, count: input.count)
        input.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { output in
                apply(input, parameters: parameters, output: output, clampMask: nil)
            }
        }
        return output
    }

    /// The integer codes q (for saving), same rounding and clamping.
    public static func quantize(_ input: [Float], parameters: QuantizationParameters) -> [Int32] {
        let channels = parameters.scales.count
        precondition(input.count % channels == 0, "\(input.count) values do not split into \(channels) channels")
        let width = input.count / channels
        let quantMin = Float(parameters.quantMin), quantMax = Float(parameters.quantMax)
        return input.indices.map { i in
            let channel = i / width
            let code = Float(parameters.zeroPoints[channel])
                + (input[i] * (1 / parameters.scales[channel])).rounded(.toNearestOrEven)
            return Int32(Float.minimum(Float.maximum(code, quantMin), quantMax))
        }
    }

    /// x̂ = (q − zp) · scale.
    public static func dequantize(_ codes: [Int32], parameters: QuantizationParameters) -> [Float] {
        let channels = parameters.scales.count
        precondition(codes.count % channels == 0, "\(codes.count) codes do not split into \(channels) channels")
        let width = codes.count / channels
        return codes.indices.map { i in
            let channel = i / width
            return Float(codes[i] - parameters.zeroPoints[channel]) * parameters.scales[channel]
        }
    }
}

/// XNOR-Net 1-bit weights (Rastegari et al., 2016): per output row (axis 0) alpha = mean |W_row|; W_b = alpha · sign(W).
/// sign(0) is taken as +1 (torch.sign gives 0) so that every weight is exactly ±alpha and the packed form, one
/// sign bit per weight, round-trips; the reference data has no zero weights, so both agree on it.
public enum BinaryQuantization {
    /// alpha per row: the scale that minimizes ‖W_row − alpha · sign(W_row)‖².
    public static func scales(_ weights: [Float], rows: Int) -> [Float] {
        precondition(rows > 0 && weights.count % rows == 0, "\(weights.count) weights do not split into \(rows) rows")
        let width = weights.count / rows
        guard width > 0 else { return [Float](repeating: 0, count: rows) }
        return (0..<rows).map { row in
            var total = 0.0  // Double: the mean matches torch to 1e-6 even for wide rows
            for value in weights[row * width..<(row + 1) * width] { total += Double(abs(value)) }
            return Float(total / Double(width))
        }
    }

    public static func binarize(_ weights: [Float], rows: Int) -> [Float] {
        let alphas = scales(weights, rows: rows)
        let width = weights.count / rows
        return weights.indices.map { i in weights[i] >= 0 ? alphas[i / width] : -alphas[i / width] }
    }

    /// 1 bit per weight (1 = non-negative), packed 8 per byte, LSB first.
    public static func signBits(_ weights: [Float]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: (weights.count + 7) / 8)
        for (i, value) in weights.enumerated() where value >= 0 { bytes[i / 8] |= 1 << UInt8(i % 8) }
        return bytes
    }

    /// ±alpha of each weight's row from its sign bit; `count` weights in `scales.count` rows.
    public static func unpack(signBits: [UInt8], scales: [Float], count: Int) -> [Float] {
        precondition(!scales.isEmpty && count % scales.count == 0, "\(count) weights do not split into \(scales.count) rows")
        precondition(signBits.count * 8 >= count, "\(signBits.count) bytes cannot hold \(count) sign bits")
        let width = count / scales.count
        return (0..<count).map { i in
            let isNonNegative = signBits[i / 8] >> UInt8(i % 8) & 1 == 1
            return isNonNegative ? scales[i / width] : -scales[i / width]
        }
    }
}

/// Integer codes packed into bytes, LSB first: a `bits`-wide field per code, so 8 bits are one per byte,
/// 4 bits two per byte, 2 bits four, 1 bit eight (other widths ≤ 8 straddle bytes).
///
/// Sub-byte codes are stored as (q − quantMin) so they are unsigned. 8-bit codes are stored as the code's own low
/// 8 bits — int8 two's complement when quantMin < 0, uint8 otherwise — so the bytes load directly as torch's
/// qint8/quint8 storage.
public enum PackedCodes {
    public static func pack(_ codes: [Int32], bits: Int, quantMin: Int32) -> [UInt8] {
        precondition((1...8).contains(bits), "packing takes 1 to 8 bits per code, got \(bits)")
        if bits == 8 { return codes.map { UInt8(truncatingIfNeeded: $0) } }
        let fieldMask = UInt32(1) << UInt32(bits) - 1
        var bytes = [UInt8](repeating: 0, count: (codes.count * bits + 7) / 8)
        for (i, code) in codes.enumerated() {
            let field = UInt32(truncatingIfNeeded: code &- quantMin) & fieldMask
            let bit = i * bits
            // Up to two bytes: a field never spans more when bits ≤ 8.
            bytes[bit / 8] |= UInt8(truncatingIfNeeded: field << UInt32(bit % 8))
            if bit % 8 + bits > 8 { bytes[bit / 8 + 1] |= UInt8(truncatingIfNeeded: field >> UInt32(8 - bit % 8)) }
        }
        return bytes
    }

    public static func unpack(_ bytes: [UInt8], count: Int, bits: Int, quantMin: Int32) -> [Int32] {
        precondition((1...8).contains(bits), "packing takes 1 to 8 bits per code, got \(bits)")
        precondition(bytes.count * 8 >= count * bits, "\(bytes.count) bytes cannot hold \(count) \(bits)-bit codes")
        if bits == 8 {
            return bytes.prefix(count).map { quantMin < 0 ? Int32(Int8(bitPattern: $0)) : Int32($0) }
        }
        let fieldMask = UInt32(1) << UInt32(bits) - 1
        return (0..<count).map { i in
            let bit = i * bits
            var field = UInt32(bytes[bit / 8]) >> UInt32(bit % 8)
            if bit % 8 + bits > 8 { field |= UInt32(bytes[bit / 8 + 1]) << UInt32(8 - bit % 8) }
            return Int32(field & fieldMask) + quantMin
        }
    }
}
