import NeuralNetwork
import Tensors

/// How a quantize step treats weights: `bits` 8/4/2 on a symmetric or affine integer grid per tensor
/// or per output channel (torch's observers), or 1 bit XNOR-style (per output channel α = mean |W|,
/// W ≈ α·sign W).
public struct WeightQuantization: Sendable, Equatable {
    public var bits: Int
    public var scheme: QuantizationScheme
    public var granularity: QuantizationGranularity

    public init(bits: Int, scheme: QuantizationScheme, granularity: QuantizationGranularity) {
        precondition([8, 4, 2, 1].contains(bits), "quantization: bits must be 8, 4, 2 or 1")
        self.bits = bits
        self.scheme = scheme
        self.granularity = granularity
    }

    /// The weights a quantize step stores as integers: every weight matrix or filter bank (rank ≥ 2).
    /// Biases and normalization parameters stay in float: they are few and sensitive.
    public static func quantizableParameters(of network: Network) -> [(name: String, parameter: Parameter)] {
        network.namedParameters.filter { $0.parameter.isWeight && $0.parameter.shape.count >= 2 }
    }

    /// Scale and zero point for `values` of `shape` from min/max observers (per channel: along dim 0).
    public func parameters(for values: UnsafeBufferPointer<Float>, shape: [Int]) -> QuantizationParameters {
        var observer = MinMaxObserver(channels: granularity == .perChannel ? shape[0] : nil)
        observer.observe(values)
        return observer.parameters(bits: bits, scheme: scheme)
    }

    /// The weight rounded onto its grid, as integers packed for the file.
    public func encode(_ parameter: Parameter) -> QuantizedTensor {
        let values = parameter.value.array
        let rows = parameter.shape[0]
        if bits == 1 {
            return QuantizedTensor(shape: parameter.shape, bits: 1, parameters: nil,
                                   binaryScales: BinaryQuantization.scales(values, rows: rows),
                                   packed: BinaryQuantization.signBits(values))
        }
        let grid = values.withUnsafeBufferPointer { parameters(for: $0, shape: parameter.shape) }
        let codes = FakeQuantization.quantize(values, parameters: grid)
        return QuantizedTensor(shape: parameter.shape, bits: bits, parameters: grid, binaryScales: nil,
                               packed: PackedCodes.pack(codes, bits: bits, quantMin: grid.quantMin))
    }
}

/// A weight stored as integer codes: packed bytes plus what turns them back into floats.
public struct QuantizedTensor: Sendable, Equatable {
    public var shape: [Int]
    public var bits: Int
    /// Scale/zero point of a 2–8-bit grid; nil for binary.
    public var parameters: QuantizationParameters?
    /// α per output channel of a binary weight; nil otherwise.
    public var binaryScales: [Float]?
    public var packed: [UInt8]

    public init(shape: [Int], bits: Int, parameters: QuantizationParameters?, binaryScales: [Float]?, packed: [UInt8]) {
        self.shape = shape
        self.bits = bits
        self.parameters = parameters
        self.binaryScales = binaryScales
        self.packed = packed
    }

    public var count: Int { shape.reduce(1, *) }

    public func dequantized() -> [Float] {
        if let binaryScales { return BinaryQuantization.unpack(signBits: packed, scales: binaryScales, count: count) }
        guard let parameters else { return [Float](repeating: 0, count: count) }
        let codes = PackedCodes.unpack(packed, count: count, bits: bits, quantMin: parameters.quantMin)
        return FakeQuantization.dequantize(codes, parameters: parameters)
    }

    /// The scales saved beside the codes (α per channel for binary).
    public var scales: [Float] { binaryScales ?? parameters?.scales ?? [] }
    public var zeroPoints: [Int32] { parameters?.zeroPoints ?? [] }
}

/// Quantization-aware training of the weights: before each forward pass the float weights are put
/// aside and replaced by their fake-quantized values (scale recomputed from the current weights, as
/// torch's per-step weight observer does); after backward the float weights come back and the
/// gradient, computed at the quantized point, passes to them straight through, except where the
/// value was clamped to the grid's ends (the straight-through estimator with its clamp mask).
/// Binary weights pass their gradient straight through unmasked.
public final class WeightFakeQuantizer {
    public let quantization: WeightQuantization
    private let weights: [Parameter]
    private let floatCopies: [Tensor]
    private let clampMasks: [Tensor]

    public init(quantization: WeightQuantization, network: Network) {
        self.quantization = quantization
        weights = WeightQuantization.quantizableParameters(of: network).map(\.parameter)
        floatCopies = weights.map { Tensor(shape: $0.shape) }
        clampMasks = weights.map { Tensor(shape: $0.shape) }
    }

    /// Puts the fake-quantized weights in place for a forward pass.
    public func quantizeWeights() {
        for (index, weight) in weights.enumerated() {
            let float = floatCopies[index]
            float.copy(from: weight.value)
            let input = UnsafeBufferPointer(start: float.pointer, count: float.count)
            let output = UnsafeMutableBufferPointer(start: weight.value.pointer, count: weight.count)
            if quantization.bits == 1 {
                binarize(input, rows: weight.shape[0], into: output)
                continue
            }
            let grid = quantization.parameters(for: input, shape: weight.shape)
            FakeQuantization.apply(input, parameters: grid, output: output,
                                   clampMask: UnsafeMutableBufferPointer(start: clampMasks[index].pointer, count: weight.count))
        }
    }

    /// Brings the float weights back and masks their gradients where the grid clamped them.
    public func restoreWeights() {
        for (index, weight) in weights.enumerated() {
            weight.value.copy(from: floatCopies[index])
            guard quantization.bits != 1 else { continue }
            let gradient = weight.gradient.pointer, mask = clampMasks[index].pointer
            for i in 0..<weight.count { gradient[i] *= mask[i] }
        }
    }

    /// α·sign(w) per row without allocating (BinaryQuantization's rule: α = mean |w| of the row).
    private func binarize(_ input: UnsafeBufferPointer<Float>, rows: Int, into output: UnsafeMutableBufferPointer<Float>) {
        let width = input.count / rows
        for row in 0..<rows {
            var sum: Float = 0
            for i in (row * width)..<((row + 1) * width) { sum += abs(input[i]) }
            let alpha = sum / Float(width)
            for i in (row * width)..<((row + 1) * width) { output[i] = input[i] < 0 ? -alpha : alpha }
        }
    }
}

/// Fake-quantizes the activations entering a layer: while calibrating it only watches their range
/// (min/max observer); once calibrated it rounds them onto an 8-bit affine grid (torch's quint8
/// activations), in training too for quantization-aware training, where the gradient passes
/// straight through except where the value was clamped.
public final class ActivationFakeQuantizer: Layer {
    public static let bits = 8
    public let outputShape: [Int]
    public var parameters: [Parameter] { [] }
    public private(set) var observer = MinMaxObserver(channels: nil)
    /// The grid; nil while calibrating.
    public private(set) var grid: QuantizationParameters?
    /// While set, training batches widen the observed range (QAT keeps observing, as torch's FakeQuantize does).
    public var keepsObserving = false

    private var output: Tensor?
    private var clampMask: Tensor?
    private var inputGradient: Tensor?
    private var didQuantize = false

    public init(inputShape: [Int], grid: QuantizationParameters? = nil) {
        outputShape = inputShape
        self.grid = grid
    }

    /// Fixes the grid from what the observer saw.
    public func finishCalibration() {
        grid = observer.parameters(bits: Self.bits, scheme: .affine)
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        if grid == nil || (keepsObserving && isTraining) {
            observer.observe(UnsafeBufferPointer(start: x.pointer, count: x.count))
            if grid != nil { grid = observer.parameters(bits: Self.bits, scheme: .affine) }
        }
        guard let grid else {
            didQuantize = false
            return x
        }
        didQuantize = true
        let y = ensureTensor(&output, shape: x.shape)
        let mask = ensureTensor(&clampMask, shape: x.shape)
        FakeQuantization.apply(UnsafeBufferPointer(start: x.pointer, count: x.count), parameters: grid,
                               output: UnsafeMutableBufferPointer(start: y.pointer, count: y.count),
                               clampMask: UnsafeMutableBufferPointer(start: mask.pointer, count: mask.count))
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard needsInputGradient else { return nil }
        guard didQuantize, let mask = clampMask else { return dy }
        let dx = ensureTensor(&inputGradient, shape: dy.shape)
        for i in 0..<dy.count { dx[i] = dy[i] * mask[i] }
        return dx
    }
}

extension Network {
    /// The top-level dense and conv2d layers: where activations are fake-quantized on the way in.
    public var quantizedInputLayers: [Int] {
        layers.indices.filter { layers[$0] is Dense || layers[$0] is Conv2D }
    }

    /// Installs an activation quantizer before each dense/conv2d layer (grids given, or calibrating).
    @discardableResult
    public func installActivationQuantizers(grids: [Int: QuantizationParameters] = [:]) -> [Int: ActivationFakeQuantizer] {
        var installed: [Int: ActivationFakeQuantizer] = [:]
        var shape = inputShape
        for (index, layer) in layers.enumerated() {
            if layer is Dense || layer is Conv2D {
                let quantizer = ActivationFakeQuantizer(inputShape: shape, grid: grids[index])
                setInputTransform(quantizer, before: index)
                installed[index] = quantizer
            }
            shape = layer.outputShape
        }
        return installed
    }
}
