import Tensors

/// `flatten`: each sample's dimensions collapsed into one, torch's Flatten (start_dim 1).
///
/// Shapes (legend): N batch, D = the product of the sample dimensions.
///   x (N, …) → y (N, D); backward dy (N, D) → dx (N, …), the same values.
/// The values do not move (row-major), but a `Tensor` owns its storage and cannot view another's, and
/// reshaping the previous layer's output in place would change a buffer that layer reuses. So forward and
/// backward copy into buffers of their own: one memcpy each way, small beside the layers around it.
public final class Flatten: Layer {
    public let inputShape: [Int]
    public let outputShape: [Int]
    public var parameters: [Parameter] { [] }

    private var output: Tensor?
    private var inputGradient: Tensor?
    private var inputCount = 0

    public init(inputShape: [Int]) {
        precondition(!inputShape.isEmpty && inputShape.allSatisfy { $0 >= 1 }, "flatten: bad input shape \(inputShape)")
        self.inputShape = inputShape
        outputShape = [inputShape.reduce(1, *)]
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        precondition(x.count == 0 || x.rowSize == outputShape[0], "flatten expects samples of \(inputShape), got \(x.shape)")
        inputCount = x.rows
        let y = ensureTensor(&output, batchSize: x.rows, sampleShape: outputShape)
        y.pointer.update(from: x.pointer, count: x.count)
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard needsInputGradient else { return nil }
        let dx = ensureTensor(&inputGradient, batchSize: inputCount, sampleShape: inputShape)
        precondition(dy.count == dx.count, "backward expects dy of \([inputCount] + outputShape), got \(dy.shape)")
        dx.pointer.update(from: dy.pointer, count: dx.count)
        return dx
    }
}

/// `reshape`: each sample's values in a new shape with the same element count, torch's `x.reshape(N, *shape)`.
///
/// Shapes (legend): N batch.
///   x (N, inputShape…) → y (N, shape…); backward dy (N, shape…) → dx (N, inputShape…), the same values.
/// One entry of `shape` may be −1: it is inferred from the element count, as in torch. Copies like `Flatten`.
public final class Reshape: Layer {
    public let inputShape: [Int]
    public let outputShape: [Int]
    public var parameters: [Parameter] { [] }

    private var output: Tensor?
    private var inputGradient: Tensor?
    private var inputCount = 0

    /// Check a user's shape with `resolvedShape` first: the initializer traps on a bad one.
    public init(inputShape: [Int], shape: [Int]) {
        switch Reshape.resolvedShape(inputShape: inputShape, shape: shape) {
        case .success(let resolved): outputShape = resolved
        case .failure(let problem): preconditionFailure("reshape: \(problem.message)")
        }
        self.inputShape = inputShape
    }

    /// Why a reshape cannot be built.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// `shape` with its −1 (if any) filled in, or why it does not fit `inputShape`.
    public static func resolvedShape(inputShape: [Int], shape: [Int]) -> Result<[Int], Problem> {
        let count = inputShape.reduce(1, *)
        guard !inputShape.isEmpty, inputShape.allSatisfy({ $0 >= 1 }) else {
            return .failure(Problem(message: "bad input shape \(inputShape)"))
        }
        guard !shape.isEmpty, shape.allSatisfy({ $0 >= 1 || $0 == -1 }), shape.filter({ $0 == -1 }).count <= 1 else {
            return .failure(Problem(message: "shape must be positive sizes with at most one −1, got \(shape)"))
        }
        let known = shape.filter { $0 != -1 }.reduce(1, *)
        if shape.contains(-1) {
            guard count % known == 0 else {
                return .failure(Problem(message: "cannot infer the −1 of \(shape) from \(count) values per sample"))
            }
            return .success(shape.map { $0 == -1 ? count / known : $0 })
        }
        guard known == count else {
            return .failure(Problem(message: "shape \(shape) holds \(known) values, the input \(inputShape) has \(count)"))
        }
        return .success(shape)
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        let sampleCount = inputShape.reduce(1, *)
        precondition(x.count == 0 || x.rowSize == sampleCount, "reshape expects samples of \(inputShape), got \(x.shape)")
        inputCount = x.rows
        let y = ensureTensor(&output, batchSize: x.rows, sampleShape: outputShape)
        y.pointer.update(from: x.pointer, count: x.count)
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard needsInputGradient else { return nil }
        let dx = ensureTensor(&inputGradient, batchSize: inputCount, sampleShape: inputShape)
        precondition(dy.count == dx.count, "backward expects dy of \([inputCount] + outputShape), got \(dy.shape)")
        dx.pointer.update(from: dy.pointer, count: dx.count)
        return dx
    }
}
