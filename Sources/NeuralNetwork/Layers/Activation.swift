import Foundation
import Tensors

/// The element-wise nonlinearities of API.md, with torch's default constants
/// (leaky_relu slope 0.01, elu α 1, softplus β 1 with threshold 20, exact erf GELU).
public enum ActivationFunction: String, Sendable, CaseIterable, Codable {
    case relu, leaky_relu, relu6, elu, gelu, silu, tanh, sigmoid, softplus, linear

    /// y = f(x) over `count` elements; x and y may alias.
    public func apply(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, negativeSlope: Float = 0.01) {
        switch self {
        case .linear: if UnsafePointer(y) != x { y.update(from: x, count: count) }
        case .relu: for i in 0..<count { y[i] = max(x[i], 0) }
        case .leaky_relu: for i in 0..<count { let v = x[i]; y[i] = v > 0 ? v : negativeSlope * v }
        case .relu6: for i in 0..<count { y[i] = min(max(x[i], 0), 6) }
        case .elu: for i in 0..<count { let v = x[i]; y[i] = v > 0 ? v : expm1f(v) }
        case .gelu: for i in 0..<count { let v = x[i]; y[i] = 0.5 * v * (1 + erff(v * 0.70710678118654752)) }
        case .silu: for i in 0..<count { let v = x[i]; y[i] = v / (1 + expf(-v)) }
        case .tanh: for i in 0..<count { y[i] = tanhf(x[i]) }
        case .sigmoid: for i in 0..<count { y[i] = logistic(x[i]) }
        case .softplus: for i in 0..<count { let v = x[i]; y[i] = v > 20 ? v : log1pf(expf(v)) }
        }
    }

    /// dx = dy · f′(x), from the pre-activation x and the output y = f(x); dx may alias dy.
    public func backward(
        x: UnsafePointer<Float>, y: UnsafePointer<Float>, dy: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
        count: Int, negativeSlope: Float = 0.01
    ) {
        switch self {
        case .linear: if UnsafePointer(dx) != dy { dx.update(from: dy, count: count) }
        case .relu: for i in 0..<count { dx[i] = x[i] > 0 ? dy[i] : 0 }
        case .leaky_relu: for i in 0..<count { dx[i] = x[i] > 0 ? dy[i] : negativeSlope * dy[i] }
        case .relu6: for i in 0..<count { let v = x[i]; dx[i] = v > 0 && v < 6 ? dy[i] : 0 }
        case .elu: for i in 0..<count { dx[i] = x[i] > 0 ? dy[i] : dy[i] * (y[i] + 1) }
        case .gelu:
            for i in 0..<count {
                let v = x[i]
                let cdf = 0.5 * (1 + erff(v * 0.70710678118654752))
                let pdf = expf(-0.5 * v * v) * 0.39894228040143268
                dx[i] = dy[i] * (cdf + v * pdf)
            }
        case .silu:
            for i in 0..<count {
                let s = logistic(x[i])
                dx[i] = dy[i] * s * (1 + x[i] * (1 - s))
            }
        case .tanh: for i in 0..<count { let t = y[i]; dx[i] = dy[i] * (1 - t * t) }
        case .sigmoid: for i in 0..<count { let s = y[i]; dx[i] = dy[i] * s * (1 - s) }
        case .softplus: for i in 0..<count { let v = x[i]; dx[i] = v > 20 ? dy[i] : dy[i] * logistic(v) }
        }
    }

    /// Whether backward needs the pre-activation input (otherwise the output suffices).
    var needsInput: Bool {
        switch self {
        case .tanh, .sigmoid, .linear: false
        default: true
        }
    }
}

@inline(__always) func logistic(_ v: Float) -> Float {
    v >= 0 ? 1 / (1 + expf(-v)) : { let e = expf(v); return e / (1 + e) }()
}

/// `activation` layer: y = f(x), any shape.
///
/// Shapes: x (N, …) → y (N, …).
public final class ActivationLayer: Layer {
    public let function: ActivationFunction
    public let negativeSlope: Float
    public let outputShape: [Int]
    public var parameters: [Parameter] { [] }

    private var input: Tensor?
    private var output: Tensor?
    private var inputGradient: Tensor?

    public init(_ function: ActivationFunction, inputShape: [Int], negativeSlope: Float = 0.01) {
        self.function = function
        self.negativeSlope = negativeSlope
        outputShape = inputShape
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        input = x
        let y = ensureTensor(&output, shape: x.shape)
        function.apply(x.pointer, y.pointer, count: x.count, negativeSlope: negativeSlope)
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard needsInputGradient, let x = input, let y = output else { return nil }
        let dx = ensureTensor(&inputGradient, shape: x.shape)
        function.backward(x: x.pointer, y: y.pointer, dy: dy.pointer, dx: dx.pointer, count: x.count, negativeSlope: negativeSlope)
        return dx
    }
}
