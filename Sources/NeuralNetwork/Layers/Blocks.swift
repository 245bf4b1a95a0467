import Tensors

/// Layers run one after another inside a block, with their parameters and buffers named under
/// the block's own prefixes (`depthwise.weight`, `layers.0.bias`, …).
final class LayerChain {
    let layers: [(name: String, layer: any Layer)]

    init(_ layers: [(name: String, layer: any Layer)]) { self.layers = layers }

    var outputShape: [Int] { layers.last!.layer.outputShape }

    var namedParameters: [(name: String, parameter: Parameter)] {
        layers.flatMap { entry in entry.layer.namedParameters.map { ("\(entry.name).\($0.name)", $0.parameter) } }
    }

    var buffers: [NamedTensor] {
        layers.flatMap { entry in entry.layer.buffers.map { NamedTensor(name: "\(entry.name).\($0.name)", tensor: $0.tensor) } }
    }

    func forward(_ input: Tensor, isTraining: Bool) -> Tensor {
        layers.reduce(input) { $1.layer.forward($0, isTraining: isTraining) }
    }

    /// dL/d(input) through every layer (the chain's input gradient is always needed inside a block).
    func backward(_ outputGradient: Tensor, needsInputGradient: Bool) -> Tensor? {
        var gradient = outputGradient
        for index in layers.indices.reversed() {
            let needed = index > 0 || needsInputGradient
            guard let next = layers[index].layer.backward(gradient, needsInputGradient: needed) else { return nil }
            gradient = next
        }
        return gradient
    }
}

/// `separable_conv2d`, MobileNet v1's block: depthwise k×k (no bias) → BN → ReLU → pointwise 1×1
/// (no bias) → BN → ReLU.
///
/// Shapes: x (N, C, H, W) → depthwise (N, C, OH, OW) → pointwise y (N, F, OH, OW).
public final class SeparableConv2D: Layer {
    private let chain: LayerChain
    public var outputShape: [Int] { chain.outputShape }
    public var parameters: [Parameter] { chain.namedParameters.map(\.parameter) }
    public var namedParameters: [(name: String, parameter: Parameter)] { chain.namedParameters }
    public var buffers: [NamedTensor] { chain.buffers }

    public init(inputShape: [Int], filters: Int, kernel: Size2D, stride: Size2D, padding: Padding, generator: inout SeededGenerator) {
        let channels = inputShape[0]
        let pad = padding.amount(kernel: kernel)
        let depthwise = Conv2D(inputShape: inputShape, filters: channels, kernel: (kernel.height, kernel.width),
                               stride: (stride.height, stride.width), padding: (pad.height, pad.width), groups: channels,
                               hasBias: false, generator: &generator)
        let bn1 = BatchNorm(inputShape: depthwise.outputShape)
        let relu1 = ActivationLayer(.relu, inputShape: depthwise.outputShape)
        let pointwise = Conv2D(inputShape: depthwise.outputShape, filters: filters, kernel: (1, 1), groups: 1, hasBias: false,
                               generator: &generator)
        let bn2 = BatchNorm(inputShape: pointwise.outputShape)
        let relu2 = ActivationLayer(.relu, inputShape: pointwise.outputShape)
        chain = LayerChain([("depthwise", depthwise), ("bn1", bn1), ("relu1", relu1), ("pointwise", pointwise), ("bn2", bn2),
                            ("relu2", relu2)])
    }

    public func forward(_ input: Tensor, isTraining: Bool) -> Tensor { chain.forward(input, isTraining: isTraining) }
    public func backward(_ outputGradient: Tensor, needsInputGradient: Bool) -> Tensor? {
        chain.backward(outputGradient, needsInputGradient: needsInputGradient)
    }
}

/// `residual`: y = x + f(x) for the inner layers f, whose output shape equals their input shape.
public final class Residual: Layer {
    private let chain: LayerChain
    public let outputShape: [Int]
    public var parameters: [Parameter] { chain.namedParameters.map(\.parameter) }
    public var namedParameters: [(name: String, parameter: Parameter)] { chain.namedParameters }
    public var buffers: [NamedTensor] { chain.buffers }
    public var stochasticLayers: [any StochasticLayer] { chain.layers.flatMap(\.layer.stochasticLayers) }
    private var output: Tensor?
    private var inputGradient: Tensor?

    init(inputShape: [Int], layers: [any Layer]) {
        outputShape = inputShape
        chain = LayerChain(layers.enumerated().map { ("layers.\($0.offset)", $0.element) })
    }

    public func forward(_ input: Tensor, isTraining: Bool) -> Tensor {
        let branch = chain.forward(input, isTraining: isTraining)
        let y = ensureTensor(&output, batchSize: input.rows, sampleShape: outputShape)
        for i in 0..<input.count { y[i] = input[i] + branch[i] }
        return y
    }

    /// dL/dx = dL/dy + f′ᵀ·dL/dy: the identity path and the branch's.
    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        let branchGradient = chain.backward(dy, needsInputGradient: true)!
        guard needsInputGradient else { return nil }
        let dx = ensureTensor(&inputGradient, batchSize: dy.rows, sampleShape: outputShape)
        for i in 0..<dy.count { dx[i] = dy[i] + branchGradient[i] }
        return dx
    }
}

/// `shuffle_unit`, ShuffleNet v1's unit.
///
/// Branch: grouped 1×1 (C → M, groups g) → BN → ReLU → channel shuffle (g) → depthwise 3×3
/// (stride s) → BN → grouped 1×1 (M → B, groups g) → BN, with M = B/4.
/// Stride 1: y = ReLU(x + branch(x)), B = C. Stride 2: y = ReLU(avgpool₃ₓ₃,s2,p1(x) ⧺ branch(x)),
/// B = out − C, concatenated along channels (shortcut first, as in the paper's code).
public final class ShuffleUnit: Layer {
    private let branch: LayerChain
    private let stride: Int
    public let outputShape: [Int]
    private let inputShape: [Int]
    public var parameters: [Parameter] { branch.namedParameters.map(\.parameter) }
    public var namedParameters: [(name: String, parameter: Parameter)] { branch.namedParameters }
    public var buffers: [NamedTensor] { branch.buffers }
    private var preActivation: Tensor?
    private var output: Tensor?
    private var inputGradient: Tensor?
    private var branchGradient: Tensor?

    public init(inputShape: [Int], outChannels: Int, groups: Int, stride: Int, generator: inout SeededGenerator) {
        let channels = inputShape[0]
        let branchChannels = stride == 1 ? outChannels : outChannels - channels
        let bottleneck = branchChannels / 4
        self.stride = stride
        self.inputShape = inputShape
        let reduce = Conv2D(inputShape: inputShape, filters: bottleneck, kernel: (1, 1), groups: groups, hasBias: false,
                            generator: &generator)
        let bn1 = BatchNorm(inputShape: reduce.outputShape)
        let relu = ActivationLayer(.relu, inputShape: reduce.outputShape)
        let shuffle = ChannelShuffle(groups: groups, inputShape: reduce.outputShape)
        let depthwise = Conv2D(inputShape: reduce.outputShape, filters: bottleneck, kernel: (3, 3), stride: (stride, stride),
                               padding: (1, 1), groups: bottleneck, hasBias: false, generator: &generator)
        let bn2 = BatchNorm(inputShape: depthwise.outputShape)
        let expand = Conv2D(inputShape: depthwise.outputShape, filters: branchChannels, kernel: (1, 1), groups: groups,
                            hasBias: false, generator: &generator)
        let bn3 = BatchNorm(inputShape: expand.outputShape)
        branch = LayerChain([("conv1", reduce), ("bn1", bn1), ("relu", relu), ("shuffle", shuffle), ("conv2", depthwise),
                             ("bn2", bn2), ("conv3", expand), ("bn3", bn3)])
        outputShape = [outChannels, depthwise.outputShape[1], depthwise.outputShape[2]]
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        let b = branch.forward(x, isTraining: isTraining)
        let n = x.rows
        let z = ensureTensor(&preActivation, batchSize: n, sampleShape: outputShape)
        let y = ensureTensor(&output, batchSize: n, sampleShape: outputShape)
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        let (oh, ow) = (outputShape[1], outputShape[2])
        let sample = outputShape.reduce(1, *), branchSample = b.rowSize
        for i in 0..<n {
            let zi = z.pointer + i * sample
            if stride == 1 {
                for j in 0..<sample { zi[j] = x[i * sample + j] + b[i * branchSample + j] }
            } else {
                // Shortcut: 3×3 average, stride 2, padding 1, zeros counted (torch's count_include_pad).
                let xi = x.pointer + i * c * h * w
                for channel in 0..<c {
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var sum: Float = 0
                            for ky in 0..<3 {
                                let iy = oy * 2 - 1 + ky
                                guard iy >= 0, iy < h else { continue }
                                for kx in 0..<3 {
                                    let ix = ox * 2 - 1 + kx
                                    guard ix >= 0, ix < w else { continue }
                                    sum += xi[(channel * h + iy) * w + ix]
                                }
                            }
                            zi[(channel * oh + oy) * ow + ox] = sum / 9
                        }
                    }
                }
                (zi + c * oh * ow).update(from: b.pointer + i * branchSample, count: branchSample)
            }
            for j in 0..<sample { y[i * sample + j] = max(zi[j], 0) }
        }
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard let z = preActivation else { preconditionFailure("shuffle unit backward before forward") }
        let n = dy.rows
        let sample = outputShape.reduce(1, *)
        let (c, h, w) = (inputShape[0], inputShape[1], inputShape[2])
        let (oh, ow) = (outputShape[1], outputShape[2])
        let branchShape = stride == 1 ? outputShape : [outputShape[0] - c, oh, ow]
        let branchSample = branchShape.reduce(1, *)
        let db = ensureTensor(&branchGradient, batchSize: n, sampleShape: branchShape)
        let dx = ensureTensor(&inputGradient, batchSize: n, sampleShape: inputShape)
        dx.zero()
        for i in 0..<n {
            let offset = stride == 1 ? 0 : c * oh * ow
            for j in 0..<branchSample {
                let k = i * sample + offset + j
                db[i * branchSample + j] = z[k] > 0 ? dy[k] : 0
            }
            let dxi = dx.pointer + i * c * h * w
            if stride == 1 {
                for j in 0..<sample { let k = i * sample + j; dxi[j] = z[k] > 0 ? dy[k] : 0 }
            } else {
                for channel in 0..<c {
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            let k = i * sample + (channel * oh + oy) * ow + ox
                            let g = z[k] > 0 ? dy[k] / 9 : 0
                            for ky in 0..<3 {
                                let iy = oy * 2 - 1 + ky
                                guard iy >= 0, iy < h else { continue }
                                for kx in 0..<3 {
                                    let ix = ox * 2 - 1 + kx
                                    guard ix >= 0, ix < w else { continue }
                                    dxi[(channel * h + iy) * w + ix] += g
                                }
                            }
                        }
                    }
                }
            }
        }
        let throughBranch = branch.backward(db, needsInputGradient: true)!
        guard needsInputGradient else { return nil }
        for i in 0..<dx.count { dx[i] += throughBranch[i] }
        return dx
    }
}
