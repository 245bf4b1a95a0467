/// A dense, row-major Float32 tensor that owns its storage.
///
/// A tensor is a reference type on purpose: layers allocate their output and gradient buffers once
/// and hand the same object back every batch, so the training loop allocates nothing. The storage
/// has a fixed `capacity`; `reshape(_:)` changes the logical shape without reallocating as long as
/// the new element count fits (a smaller last batch reuses the buffers of a full one).
public final class Tensor: @unchecked Sendable {
    public private(set) var shape: [Int]
    public private(set) var count: Int
    public let capacity: Int
    /// The first `count` elements are the tensor's values.
    public let storage: UnsafeMutableBufferPointer<Float>

    public init(shape: [Int], capacity: Int? = nil) {
        let count = shape.reduce(1, *)
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        let capacity = max(capacity ?? count, count)
        // A shape array of its own (not shared with the caller's), so later in-place shape
        // changes never trigger a copy-on-write allocation.
        self.shape = shape.map { $0 }
        self.count = count
        self.capacity = capacity
        storage = .allocate(capacity: max(capacity, 1))
        storage.initialize(repeating: 0)
    }

    public convenience init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        self.init(shape: shape)
        _ = storage.initialize(from: values)
    }

    public convenience init(shape: [Int], repeating value: Float) {
        self.init(shape: shape)
        fill(value)
    }

    deinit { storage.deallocate() }

    /// A pointer to the first element.
    @inlinable public var pointer: UnsafeMutablePointer<Float> { storage.baseAddress! }

    /// The logical values, without copying.
    @inlinable public var values: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: storage[0..<count])
    }

    /// The values as an array (copies; for tests, serialization and JSON).
    public var array: [Float] { Array(values) }

    /// Changes the logical shape; the element count must fit in the capacity. No allocation.
    public func reshape(_ newShape: [Int]) {
        let newCount = newShape.reduce(1, *)
        precondition(newCount <= capacity, "shape \(newShape) exceeds capacity \(capacity)")
        if newShape.count == shape.count {
            for axis in newShape.indices { shape[axis] = newShape[axis] }  // in place: no allocation
        } else {
            shape = newShape.map { $0 }
        }
        count = newCount
    }

    /// Changes only the leading (batch) dimension, in place: no allocation, not even of a shape array.
    public func setBatchSize(_ batchSize: Int) {
        let sampleCount = shape.count > 1 ? shape.dropFirst().reduce(1, *) : 1
        precondition(batchSize * sampleCount <= capacity, "batch \(batchSize) exceeds capacity \(capacity)")
        if shape.isEmpty { shape = [batchSize] } else { shape[0] = batchSize }
        count = batchSize * sampleCount
    }

    /// Size of the leading (batch) dimension.
    @inlinable public var rows: Int { shape.first ?? 1 }
    /// Elements per leading index.
    @inlinable public var rowSize: Int { rows == 0 ? 0 : count / rows }

    @inlinable public subscript(index: Int) -> Float {
        get { storage[index] }
        set { storage[index] = newValue }
    }

    public func fill(_ value: Float) {
        values.update(repeating: value)
    }

    public func zero() { fill(0) }

    /// Copies `other`'s values and shape into this tensor.
    public func copy(from other: Tensor) {
        reshape(other.shape)
        pointer.update(from: other.pointer, count: other.count)
    }

    /// A new tensor with the same shape and values.
    public func clone() -> Tensor {
        let copy = Tensor(shape: shape)
        copy.pointer.update(from: pointer, count: count)
        return copy
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = values.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor\(shape)[\(head)\(count > 8 ? ", …" : "")]"
    }
}

/// A buffer of `batchSize` samples of `sampleShape`, reusing `tensor` when it has the capacity.
/// The per-batch path uses this form: it builds no shape array unless it must allocate anyway.
@inlinable
public func ensureTensor(_ tensor: inout Tensor?, batchSize: Int, sampleShape: [Int]) -> Tensor {
    if let existing = tensor, existing.shape.count == sampleShape.count + 1,
       existing.capacity >= batchSize * existing.rowSizeOfSample, existing.shape.dropFirst().elementsEqual(sampleShape) {
        if existing.rows != batchSize { existing.setBatchSize(batchSize) }
        return existing
    }
    let fresh = Tensor(shape: [batchSize] + sampleShape)
    tensor = fresh
    return fresh
}

extension Tensor {
    /// Elements per sample (all dimensions but the first).
    @inlinable public var rowSizeOfSample: Int { shape.dropFirst().reduce(1, *) }
}

/// Grows `tensor` to hold `shape`, reusing it when it already has the capacity.
/// Layers call this at the start of forward/backward: it allocates only when the batch grows.
@inlinable
public func ensureTensor(_ tensor: inout Tensor?, shape: [Int]) -> Tensor {
    let needed = shape.reduce(1, *)
    if let existing = tensor, existing.capacity >= needed {
        if existing.shape != shape { existing.reshape(shape) }
        return existing
    }
    let fresh = Tensor(shape: shape)
    tensor = fresh
    return fresh
}
