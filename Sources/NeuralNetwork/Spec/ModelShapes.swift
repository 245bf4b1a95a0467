/// What one layer does to a sample: its output shape, trainable parameters and forward FLOPs.
public struct LayerSummary: Sendable, Equatable {
    public var outputShape: [Int]
    public var parameters: Int
    public var flops: Int
}

extension ModelSpec {
    /// Whether any layer normalizes with batch statistics while training (a batch of one sample
    /// has no variance to normalize by).
    public var usesBatchStatistics: Bool { Self.usesBatchStatistics(layers) }

    private static func usesBatchStatistics(_ layers: [LayerSpec]) -> Bool {
        layers.contains { layer in
            switch layer {
            case .batchNorm, .separableConv2d, .shuffleUnit: true
            case .residual(let inner): usesBatchStatistics(inner)
            default: false
            }
        }
    }

    /// Walks the layers from `inputShape`, checking that each fits what comes in, and reports
    /// every mismatch with the layer's path and both shapes. Nil when any layer does not fit.
    public func summarize(inputShape: [Int], path: String = "model.layers", diagnostics: SpecDiagnostics) -> [LayerSummary]? {
        Self.summarize(layers, inputShape: inputShape, path: path, diagnostics: diagnostics)
    }

    public func parameterCount(inputShape: [Int]) -> Int? {
        summarize(inputShape: inputShape, diagnostics: SpecDiagnostics()).flatMap { Checked.sum($0.map(\.parameters)) }
    }

    static func summarize(_ layers: [LayerSpec], inputShape: [Int], path: String, diagnostics: SpecDiagnostics) -> [LayerSummary]? {
        var shape = inputShape
        var summaries: [LayerSummary] = []
        for (index, layer) in layers.enumerated() {
            let layerPath = "\(path)[\(index)]"
            if index > 0, case .embedding = layer {
                // Its inputs must be the data's own integers: any layer before it would make them fractions.
                diagnostics.report(layerPath, "embedding takes token indices straight from the data, so it must be the first layer")
                return nil
            }
            guard let summary = summarize(layer, input: shape, path: layerPath, diagnostics: diagnostics) else { return nil }
            summaries.append(summary)
            shape = summary.outputShape
        }
        // The totals are what the limits compare; they must exist as numbers too.
        guard Checked.sum(summaries.map(\.parameters)) != nil, Checked.sum(summaries.map(\.flops)) != nil else {
            diagnostics.report(path, "the model's parameters or FLOPs per sample exceed \(Int.max): far beyond any limit")
            return nil
        }
        return summaries
    }

    /// One layer's summary for a sample of shape `input`.
    static func summarize(_ layer: LayerSpec, input: [Int], path: String, diagnostics: SpecDiagnostics) -> LayerSummary? {
        func fail(_ message: String) -> LayerSummary? {
            diagnostics.report(path, "\(layer.typeName) \(message) (its input is \(input))")
            return nil
        }
        // Sizes come from requests: every product and sum below is checked, and one that does not
        // fit is reported here instead of trapping (a sample may hold at most maxSampleValues values).
        guard let count = Checked.product(input), count <= maxSampleValues else {
            return fail("receives more than \(maxSampleValues) values per sample")
        }
        let tooLarge = "is too large: its sizes multiply beyond what can be counted (\(Int.max))"
        func summary(_ outputShape: [Int], _ parameters: Int?, _ flops: Int?) -> LayerSummary? {
            guard let parameters, let flops, let outputCount = Checked.product(outputShape) else { return fail(tooLarge) }
            guard outputCount <= maxSampleValues else {
                return fail("would output \(outputCount) values per sample (\(outputShape)), more than \(maxSampleValues)")
            }
            return LayerSummary(outputShape: outputShape, parameters: parameters, flops: flops)
        }
        func image() -> (c: Int, h: Int, w: Int)? {
            guard input.count == 3 else { return nil }
            return (input[0], input[1], input[2])
        }
        // Sizes, kernels, strides and paddings are each at most 2³¹ (input) or 1024 (spec): no overflow.
        func spatial(_ size: Int, kernel: Int, stride: Int, pad: Int) -> Int { (size + 2 * pad - kernel) / stride + 1 }
        let imageHint = "needs images [channels, height, width]; set model.input_shape (e.g. [1, 8, 8] for digits) or add a reshape"
        switch layer {
        case .dense(let units, _, let bias):
            return summary([units], Checked.sum(Checked.product(count, units), bias ? units : 0), Checked.product(2, count, units))
        case .dropout, .activation:
            return LayerSummary(outputShape: input, parameters: 0, flops: 0)
        case .conv2d(let filters, let kernel, let stride, let padding, let groups, let bias, _):
            guard let (c, h, w) = image() else { return fail(imageHint) }
            guard c % groups == 0, filters % groups == 0 else {
                return fail("with groups \(groups) needs input channels (\(c)) and filters (\(filters)) divisible by it")
            }
            if padding == .same, kernel.height % 2 == 0 || kernel.width % 2 == 0 {
                return fail("padding \"same\" needs an odd kernel (it pads (k−1)/2 on each side), got \(kernel.height)×\(kernel.width); give the padding explicitly")
            }
            let pad = padding.amount(kernel: kernel)
            let oh = spatial(h, kernel: kernel.height, stride: stride.height, pad: pad.height)
            let ow = spatial(w, kernel: kernel.width, stride: stride.width, pad: pad.width)
            guard oh >= 1, ow >= 1 else { return fail("kernel \(kernel.height)×\(kernel.width) does not fit the image") }
            let weights = Checked.product(filters, c / groups, kernel.height, kernel.width)
            return summary([filters, oh, ow], Checked.sum(weights, bias ? filters : 0), Checked.product(2, weights, oh, ow))
        case .depthwiseConv2d(let kernel, let stride, let padding, let multiplier, let bias, let activation):
            guard let (c, _, _) = image() else { return fail(imageHint) }
            guard let filters = Checked.product(c, multiplier) else { return fail(tooLarge) }
            return summarize(.conv2d(filters: filters, kernel: kernel, stride: stride, padding: padding, groups: c, bias: bias,
                                     activation: activation), input: input, path: path, diagnostics: diagnostics)
        case .separableConv2d(let filters, let kernel, let stride, let padding):
            guard let (c, _, _) = image() else { return fail(imageHint) }
            guard let depthwise = summarize(.conv2d(filters: c, kernel: kernel, stride: stride, padding: padding, groups: c, bias: false,
                                                    activation: .linear), input: input, path: path, diagnostics: diagnostics)
            else { return nil }
            let (oh, ow) = (depthwise.outputShape[1], depthwise.outputShape[2])
            let pointwise = Checked.product(filters, c)
            return summary([filters, oh, ow], Checked.sum(depthwise.parameters, 2 * c, pointwise, 2 * filters),
                           Checked.sum(depthwise.flops, Checked.product(2, pointwise, oh, ow)))
        case .shuffleUnit(let outChannels, let groups, let stride):
            guard let (c, h, w) = image() else { return fail(imageHint) }
            let branch = stride == 1 ? outChannels : outChannels - c
            guard stride == 2 || outChannels == c else {
                return fail("with stride 1 adds its input, so out_channels must equal the input channels (\(c)), got \(outChannels)")
            }
            guard branch > 0 else { return fail("with stride 2 concatenates its input, so out_channels must exceed the input channels (\(c))") }
            let bottleneck = branch / 4
            guard bottleneck >= groups, c % groups == 0, bottleneck % groups == 0, branch % groups == 0 else {
                return fail("needs input channels (\(c)), the bottleneck (\(bottleneck) = branch/4) and the branch (\(branch)) divisible by groups \(groups)")
            }
            let oh = spatial(h, kernel: 3, stride: stride, pad: 1), ow = spatial(w, kernel: 3, stride: stride, pad: 1)
            // Channels are at most 10⁶ (the spec's bound) and c ≤ 2³¹: each product of two fits.
            let first = bottleneck * (c / groups), depthwise = bottleneck * 9, last = branch * (bottleneck / groups)
            return summary([outChannels, oh, ow],
                           Checked.sum(first, 2 * bottleneck, depthwise, 2 * bottleneck, last, 2 * branch),
                           Checked.sum(Checked.product(2, first, h, w), Checked.product(2, depthwise + last, oh, ow)))
        case .channelShuffle(let groups):
            guard let (c, _, _) = image() else { return fail(imageHint) }
            guard c % groups == 0 else { return fail("needs the channels (\(c)) divisible by groups \(groups)") }
            return LayerSummary(outputShape: input, parameters: 0, flops: 0)
        case .maxPool2d(let kernel, let stride), .avgPool2d(let kernel, let stride):
            guard let (c, h, w) = image() else { return fail(imageHint) }
            let oh = spatial(h, kernel: kernel.height, stride: stride.height, pad: 0)
            let ow = spatial(w, kernel: kernel.width, stride: stride.width, pad: 0)
            guard oh >= 1, ow >= 1 else { return fail("kernel \(kernel.height)×\(kernel.width) does not fit the image") }
            return summary([c, oh, ow], 0, 0)
        case .globalAvgPool2d:
            guard let (c, _, _) = image() else { return fail(imageHint) }
            return LayerSummary(outputShape: [c], parameters: 0, flops: 0)
        case .batchNorm:
            guard input.count == 1 || input.count == 3 else { return fail("normalizes features [F] or images [C, H, W]") }
            return LayerSummary(outputShape: input, parameters: 2 * input[0], flops: 0)
        case .layerNorm:
            return LayerSummary(outputShape: input, parameters: 2 * input[input.count - 1], flops: 0)
        case .flatten:
            return LayerSummary(outputShape: [count], parameters: 0, flops: 0)
        case .reshape(let shape):
            guard let values = Checked.product(shape), values == count else {
                return fail("to \(shape) needs \(Checked.product(shape).map(String.init) ?? "too many") values, the input has \(count)")
            }
            return LayerSummary(outputShape: shape, parameters: 0, flops: 0)
        case .embedding(let vocabulary, let dim):
            guard input.count == 1 else { return fail("takes a sequence of token indices [T]") }
            return summary([input[0], dim], Checked.product(vocabulary, dim), 0)
        case .lstm(let hidden, let sequences), .gru(let hidden, let sequences):
            guard input.count == 2 else { return fail("takes sequences [time steps, features]; set model.input_shape, e.g. [32, 16]") }
            let gates = layer.typeName == "lstm" ? 4 : 3
            let (steps, features) = (input[0], input[1])
            return summary(sequences ? [steps, hidden] : [hidden],
                           Checked.sum(Checked.product(gates, hidden, features + hidden), 2 * gates * hidden),
                           Checked.product(2, steps, gates, hidden, features + hidden))
        case .residual(let layers):
            guard let inner = summarize(layers, inputShape: input, path: "\(path).layers", diagnostics: diagnostics) else { return nil }
            guard inner.last?.outputShape == input else {
                return fail("adds its branch to its input, so the branch must keep the shape; it ends with \(inner.last?.outputShape ?? [])")
            }
            return summary(input, Checked.sum(inner.map(\.parameters)), Checked.sum([count] + inner.map(\.flops)))
        }
    }
}

/// Arithmetic on sizes that come from requests: nil where the exact result does not fit an Int,
/// instead of a trap. A nil operand (an earlier overflow) gives nil.
public enum Checked {
    public static func product(_ factors: Int?...) -> Int? { product(factors) }

    public static func product(_ factors: [Int?]) -> Int? {
        var result = 1
        for factor in factors {
            guard let factor else { return nil }
            let (next, overflow) = result.multipliedReportingOverflow(by: factor)
            if overflow { return nil }
            result = next
        }
        return result
    }

    public static func product(_ factors: [Int]) -> Int? { product(factors.map(Optional.some)) }

    public static func sum(_ terms: Int?...) -> Int? { sum(terms) }

    public static func sum(_ terms: [Int?]) -> Int? {
        var result = 0
        for term in terms {
            guard let term else { return nil }
            let (next, overflow) = result.addingReportingOverflow(term)
            if overflow { return nil }
            result = next
        }
        return result
    }

    public static func sum(_ terms: [Int]) -> Int? { sum(terms.map(Optional.some)) }
}
