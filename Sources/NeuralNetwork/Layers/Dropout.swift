import Tensors

/// `dropout`: while training, zeroes each element with probability p and scales the rest by
/// 1/(1−p) (inverted dropout, torch's), so inference is the identity.
///
/// Shapes: x (N, …) → y (N, …); the mask m has x's shape and holds 0 or 1/(1−p).
public final class Dropout: StochasticLayer {
    public let rate: Float
    public let outputShape: [Int]
    public var parameters: [Parameter] { [] }
    public var generator: SeededGenerator

    private var mask: Tensor?
    private var output: Tensor?
    private var inputGradient: Tensor?
    private var wasTraining = false

    public init(rate: Float, inputShape: [Int], generator: SeededGenerator) {
        self.rate = rate
        self.outputShape = inputShape
        self.generator = generator
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        wasTraining = isTraining && rate > 0
        guard wasTraining else { return x }
        let m = ensureTensor(&mask, shape: x.shape)
        let y = ensureTensor(&output, shape: x.shape)
        let keep = 1 / (1 - rate)
        for i in 0..<x.count {
            let scale: Float = generator.nextFloat() < rate ? 0 : keep
            m[i] = scale
            y[i] = x[i] * scale
        }
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard needsInputGradient else { return nil }
        guard wasTraining, let m = mask else { return dy }
        let dx = ensureTensor(&inputGradient, shape: dy.shape)
        for i in 0..<dy.count { dx[i] = dy[i] * m[i] }
        return dx
    }
}
