import Tensors

/// `channel_shuffle`: ShuffleNet's channel permutation, torch's ChannelShuffle:
/// x.view(N, g, C/g, H, W).transpose(1, 2).reshape(N, C, H, W).
///
/// Shapes (legend): N batch, C channels, g groups, K = C/g channels per group, S = H·W positions.
///   x (N, C, H, W) → y (N, C, H, W); input channel i·K + j (group i, member j) becomes output channel j·g + i.
/// A pure permutation: backward sends each output channel's gradient back to the channel it came from.
/// The spatial part is carried whole, so [C, L] and [C] samples work as well.
public final class ChannelShuffle: Layer {
    public let groups: Int
    public let channels: Int
    public let outputShape: [Int]
    public var parameters: [Parameter] { [] }

    private let spatialSize: Int
    private var output: Tensor?
    private var inputGradient: Tensor?

    /// - Parameter inputShape: the per-sample shape [C, H, W]; C must be divisible by `groups`.
    public init(groups: Int, inputShape: [Int]) {
        precondition(!inputShape.isEmpty && inputShape.allSatisfy { $0 > 0 },
                     "channel_shuffle needs a per-sample shape [C, H, W] of positive sizes, got \(inputShape)")
        precondition(groups > 0 && inputShape[0] % groups == 0,
                     "channel_shuffle needs channels (\(inputShape[0])) divisible by groups (\(groups))")
        self.groups = groups
        channels = inputShape[0]
        spatialSize = inputShape.dropFirst().reduce(1, *)
        outputShape = inputShape
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        precondition(x.rowSize == channels * spatialSize, "channel_shuffle expects samples of shape \(outputShape), got \(x.shape)")
        let y = ensureTensor(&output, batchSize: x.rows, sampleShape: outputShape)
        permute(from: x.pointer, to: y.pointer, batchSize: x.rows, inverse: false)
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard needsInputGradient else { return nil }
        precondition(dy.rowSize == channels * spatialSize, "channel_shuffle expects gradients of shape \(outputShape), got \(dy.shape)")
        let dx = ensureTensor(&inputGradient, batchSize: dy.rows, sampleShape: outputShape)
        permute(from: dy.pointer, to: dx.pointer, batchSize: dy.rows, inverse: true)
        return dx
    }

    /// Forward: destination channel j·g + i ← source channel i·K + j; inverse: the other way round.
    private func permute(from source: UnsafeMutablePointer<Float>, to destination: UnsafeMutablePointer<Float>,
                         batchSize: Int, inverse: Bool) {
        let s = spatialSize, perGroup = channels / groups, sampleSize = channels * s
        for sample in 0..<batchSize {
            let src = source + sample * sampleSize, dst = destination + sample * sampleSize
            for i in 0..<groups {
                for j in 0..<perGroup {
                    let grouped = (i * perGroup + j) * s, shuffled = (j * groups + i) * s
                    if inverse {
                        (dst + grouped).update(from: src + shuffled, count: s)
                    } else {
                        (dst + shuffled).update(from: src + grouped, count: s)
                    }
                }
            }
        }
    }
}
