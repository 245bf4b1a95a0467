import Foundation

/// The binary array formats a dataset upload can be besides CSV.
public enum ArrayFormat: String, Sendable, CaseIterable {
    /// MNIST-style IDX (big-endian dimensions and values).
    case idx
    /// NumPy's `.npy` (`np.save`).
    case npy

    /// The samples of an array file (gzip-compressed or not), without targets.
    public func readSamples(data: Data, maxBytes: Int = .max) throws(DatasetError) -> SampleArray {
        switch self {
        case .idx: try IDXParser.readSamples(data: data, maxBytes: maxBytes)
        case .npy: try NPYParser.readSamples(data: data, maxBytes: maxBytes)
        }
    }

    /// The labels of an array file (gzip-compressed or not): one value per sample.
    public func readLabels(data: Data, maxBytes: Int = .max) throws(DatasetError) -> [Double] {
        switch self {
        case .idx: try IDXParser.readLabels(data: data, maxBytes: maxBytes)
        case .npy: try NPYParser.readLabels(data: data, maxBytes: maxBytes)
        }
    }

    /// The file's bytes, memory-mapped (a large file is not copied before parsing).
    public static func contents(of url: URL) throws(DatasetError) -> Data {
        do {
            return try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw DatasetError("cannot read \(url.path): \(error.localizedDescription)")
        }
    }
}

/// Samples read from an IDX or NPY array, whose first dimension counts them; no targets.
///
/// Values keep their stored scale (uint8 pixels stay 0…255): the job's
/// `preprocessing.standardize` (on by default) puts features on a common scale.
public struct SampleArray: Sendable, Equatable {
    /// `rows × featureCount` values, row-major.
    public var features: [Float]
    public var rows: Int
    /// One sample's shape: `[d]` for an `(N, d)` array, `[1, h, w]` (one channel) for `(N, h, w)`
    /// images, `[c, h, w]` for `(N, c, h, w)` ones.
    public var sampleShape: [Int]
    /// The array's shape in the file, samples first.
    public var arrayShape: [Int]
    /// The stored element type, as the file names it (`ubyte`, `<f4`).
    public var elementType: String

    public var featureCount: Int { sampleShape.reduce(1, *) }

    public init(features: [Float], rows: Int, sampleShape: [Int], arrayShape: [Int], elementType: String) {
        precondition(features.count == rows * sampleShape.reduce(1, *), "\(features.count) values for \(rows) × \(sampleShape)")
        self.features = features
        self.rows = rows
        self.sampleShape = sampleShape
        self.arrayShape = arrayShape
        self.elementType = elementType
    }

    /// One sample's shape for an array of `shape` (samples first); see `sampleShape`.
    static func sampleShape(ofArray shape: [Int]) -> [Int] {
        switch shape.count {
        case 0, 1: [1]
        case 3: [1] + shape.dropFirst()
        default: Array(shape.dropFirst())
        }
    }
}

extension TabularDataset {
    /// Samples from one file with targets from another (an IDX or NPY labels upload).
    public init(samples: SampleArray, targets: DatasetTargets, targetName: String? = nil) throws(DatasetError) {
        guard targets.count == samples.rows else {
            throw DatasetError("there are \(targets.count) labels for \(samples.rows) samples; every sample needs one label")
        }
        self.init(
            features: samples.features, rows: samples.rows, featureCount: samples.featureCount, featureNames: [],
            sampleShape: samples.sampleShape, task: targets.task, classes: targets.classes, classIndices: targets.classIndices,
            targetValues: targets.values, targetCount: targets.task == .classification ? targets.classes?.count ?? 0 : 1,
            targetName: targetName)
    }
}

// MARK: - Reading the values of an array file

/// How the elements of an IDX or NPY array are stored.
struct ElementType: Equatable, Sendable {
    enum Kind: Sendable { case unsigned, signed, float }
    let kind: Kind
    /// Bytes per element: 1, 2, 4 or 8.
    let size: Int
    let bigEndian: Bool
    /// What the file calls it, for messages: `ubyte`, `<f4`.
    let name: String
}

/// An array file's header, read: the shape (samples first), the element type and where the values start.
struct ArrayLayout: Sendable {
    var shape: [Int]
    var element: ElementType
    /// Offset of the first value in the (decompressed) file.
    var dataOffset: Int
    /// The number of values, the product of `shape`.
    var count: Int

    /// Checks the shape (at least one sample, no empty dimension, a size that fits in memory)
    /// and that exactly its values follow the header.
    init(shape: [Int], element: ElementType, dataOffset: Int, fileSize: Int) throws(DatasetError) {
        self.shape = shape
        self.element = element
        self.dataOffset = dataOffset
        var count = 1
        for dimension in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= Int.max / 8 else {
                throw DatasetError("the header's shape \(shape) holds more values than can be read")
            }
            count = product
        }
        self.count = count
        let dataBytes = count * element.size
        let available = fileSize - dataOffset
        let description = "shape \(shape) of \(element.name) (\(dataBytes) bytes of values)"
        if available < dataBytes {
            throw DatasetError("the file is truncated: its header announces \(description) but only \(available) bytes follow the header")
        }
        if available > dataBytes {
            throw DatasetError("the file has \(available - dataBytes) bytes more than its header announces (\(description)); is the header's shape right?")
        }
    }

    /// The position of the `flat`-th value, e.g. `[3, 0, 5, 7]`.
    func index(ofValue flat: Int) -> [Int] {
        var index = [Int](repeating: 0, count: shape.count)
        var rest = flat
        for axis in shape.indices.reversed() where shape[axis] > 0 {
            index[axis] = rest % shape[axis]
            rest /= shape[axis]
        }
        return index
    }

    /// Every value, in file order, as `Output`. NaN and infinite values are refused, and so are
    /// values beyond `Output`'s range (float64 → float32), naming the first one's index.
    func decode<Output: BinaryFloatingPoint>(_ file: UnsafeRawBufferPointer, as _: Output.Type) throws(DatasetError) -> [Output] {
        var failure: (index: Int, value: Double)?
        let count = count
        let values = [Output](unsafeUninitializedCapacity: count) { output, initialized in
            guard count > 0, let base = file.baseAddress.map({ UnsafeRawPointer($0 + dataOffset) }) else {
                initialized = 0
                return
            }
            let big = element.bigEndian
            switch (element.kind, element.size) {
            case (.unsigned, 1):
                let bytes = base.assumingMemoryBound(to: UInt8.self)
                for i in 0..<count { output[i] = Output(bytes[i]) }
            case (.signed, 1):
                let bytes = base.assumingMemoryBound(to: Int8.self)
                for i in 0..<count { output[i] = Output(bytes[i]) }
            case (.unsigned, 2): Self.integers(base, count, UInt16.self, big, output)
            case (.signed, 2): Self.integers(base, count, Int16.self, big, output)
            case (.unsigned, 4): Self.integers(base, count, UInt32.self, big, output)
            case (.signed, 4): Self.integers(base, count, Int32.self, big, output)
            case (.unsigned, 8): Self.integers(base, count, UInt64.self, big, output)
            case (.signed, 8): Self.integers(base, count, Int64.self, big, output)
            case (.float, 4):
                for i in 0..<count {
                    let bits = base.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)
                    let value = Float(bitPattern: big ? UInt32(bigEndian: bits) : UInt32(littleEndian: bits))
                    guard value.isFinite else {
                        failure = (i, Double(value))
                        initialized = i
                        return
                    }
                    output[i] = Output(value)
                }
            case (.float, 8):
                for i in 0..<count {
                    let bits = base.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)
                    let value = Double(bitPattern: big ? UInt64(bigEndian: bits) : UInt64(littleEndian: bits))
                    let converted = Output(value)
                    guard converted.isFinite else {
                        failure = (i, value)
                        initialized = i
                        return
                    }
                    output[i] = converted
                }
            default:
                preconditionFailure("no reader for \(element)")
            }
            initialized = count
        }
        if let failure {
            let index = index(ofValue: failure.index)
            let problem = failure.value.isNaN ? "is NaN; NaN and infinite values are not allowed"
                : failure.value.isInfinite ? "is infinite; NaN and infinite values are not allowed"
                : "(\(failure.value)) is beyond the range of float32"
            throw DatasetError("the value at index \(index) \(problem)", row: index.first.map { $0 + 1 })
        }
        return values
    }

    @inline(__always)
    private static func integers<Integer: FixedWidthInteger, Output: BinaryFloatingPoint>(
        _ base: UnsafeRawPointer, _ count: Int, _: Integer.Type, _ bigEndian: Bool, _ output: UnsafeMutableBufferPointer<Output>
    ) {
        let size = MemoryLayout<Integer>.size
        for i in 0..<count {
            let raw = base.loadUnaligned(fromByteOffset: i * size, as: Integer.self)
            output[i] = Output(bigEndian ? Integer(bigEndian: raw) : Integer(littleEndian: raw))
        }
    }
}

/// Shared by the IDX and NPY readers: samples and labels from a decoded layout.
enum ArrayReading {
    /// A features array: samples first, at least one value per sample.
    static func samples(_ file: UnsafeRawBufferPointer, _ layout: ArrayLayout, labelsHint: String) throws(DatasetError) -> SampleArray {
        let shape = layout.shape
        guard shape.count >= 2 else {
            throw DatasetError(
                "the array has one dimension (\(shape.first ?? 0) values): that is a labels file. \(labelsHint)")
        }
        let features = try layout.decode(file, as: Float.self)
        return SampleArray(features: features, rows: shape[0], sampleShape: SampleArray.sampleShape(ofArray: shape),
                           arrayShape: shape, elementType: layout.element.name)
    }

    /// A labels array: one value per sample, shape `(N)` or `(N, 1)`.
    static func labels(_ file: UnsafeRawBufferPointer, _ layout: ArrayLayout) throws(DatasetError) -> [Double] {
        let shape = layout.shape
        guard shape.count == 1 || (shape.count == 2 && shape[1] == 1) else {
            throw DatasetError("labels must be one value per sample, an array of shape (N) or (N, 1); this one has shape \(shape)")
        }
        return try layout.decode(file, as: Double.self)
    }

    /// Refuses shapes without samples or with an empty sample.
    static func checkNotEmpty(_ shape: [Int]) throws(DatasetError) {
        guard let samples = shape.first else {
            throw DatasetError("the array has no dimensions (a single number); the first dimension must count the samples")
        }
        guard samples > 0 else { throw DatasetError("the array has no samples (shape \(shape))") }
        if shape.dropFirst().contains(0) { throw DatasetError("the samples are empty (shape \(shape))") }
    }
}

extension Data {
    /// `withUnsafeBytes` for a body that throws `DatasetError` (the standard one rethrows `any Error`).
    func withDatasetBytes<T>(_ body: (UnsafeRawBufferPointer) throws(DatasetError) -> T) throws(DatasetError) -> T {
        let result = withUnsafeBytes { (raw: UnsafeRawBufferPointer) in Result { () throws(DatasetError) in try body(raw) } }
        return try result.get()
    }
}
