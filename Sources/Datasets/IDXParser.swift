import Foundation

/// Reads MNIST-style IDX files (http://yann.lecun.com/exdb/mnist/), gzip-compressed or not.
///
/// An IDX file is a 4-byte magic number — two zero bytes, the element type, the number of
/// dimensions — then each dimension as a big-endian UInt32, then the values, big-endian, in
/// row-major order. Types: `0x08` ubyte, `0x09` byte, `0x0B` short, `0x0C` int, `0x0D` float,
/// `0x0E` double. MNIST's images are `00 00 08 03` (N × 28 × 28 ubyte), its labels `00 00 08 01`.
public enum IDXParser {
    /// The samples of an images (or features) file: N × H × W (one-channel images, sample shape
    /// `[1, H, W]`), N × C × H × W, or N × D. Values keep their stored scale.
    ///
    /// - Parameter maxBytes: the most bytes gzip-compressed data may decompress to.
    public static func readSamples(data: Data, maxBytes: Int = .max) throws(DatasetError) -> SampleArray {
        let data = try Gzip.decompressIfNeeded(data, maxBytes: maxBytes)
        return try data.withDatasetBytes { (file: UnsafeRawBufferPointer) throws(DatasetError) -> SampleArray in
            try ArrayReading.samples(file, try layout(file), labelsHint:
                "Upload the images first (format=idx), then these labels with format=idx&labels_of=<the images' dataset id>")
        }
    }

    /// The labels of a labels file: N values (MNIST's are ubyte digits).
    public static func readLabels(data: Data, maxBytes: Int = .max) throws(DatasetError) -> [Double] {
        let data = try Gzip.decompressIfNeeded(data, maxBytes: maxBytes)
        return try data.withDatasetBytes { (file: UnsafeRawBufferPointer) throws(DatasetError) -> [Double] in
            try ArrayReading.labels(file, try layout(file))
        }
    }

    static let elementTypes: [UInt8: ElementType] = [
        0x08: ElementType(kind: .unsigned, size: 1, bigEndian: true, name: "ubyte"),
        0x09: ElementType(kind: .signed, size: 1, bigEndian: true, name: "byte"),
        0x0B: ElementType(kind: .signed, size: 2, bigEndian: true, name: "short"),
        0x0C: ElementType(kind: .signed, size: 4, bigEndian: true, name: "int"),
        0x0D: ElementType(kind: .float, size: 4, bigEndian: true, name: "float"),
        0x0E: ElementType(kind: .float, size: 8, bigEndian: true, name: "double"),
    ]

    /// Reads and checks the header.
    static func layout(_ file: UnsafeRawBufferPointer) throws(DatasetError) -> ArrayLayout {
        guard file.count >= 4 else {
            throw DatasetError("the file is \(file.count) bytes long: too short for an IDX file, which starts with a 4-byte magic number")
        }
        guard file[0] == 0, file[1] == 0 else {
            if file.starts(with: NPYParser.magic) {
                throw DatasetError("this is a NumPy .npy file, not IDX; upload it with format=npy")
            }
            let start = file.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw DatasetError("this is not an IDX file: an IDX file starts with two zero bytes, the type and the number of dimensions (00 00 08 03 for MNIST images), but this one starts with \(start)")
        }
        guard let element = elementTypes[file[2]] else {
            throw DatasetError("the IDX type byte is 0x\(String(format: "%02X", file[2])); IDX types are 0x08 (ubyte), 0x09 (byte), 0x0B (short), 0x0C (int), 0x0D (float) and 0x0E (double)")
        }
        let dimensions = Int(file[3])
        guard dimensions > 0 else { throw DatasetError("the IDX header has 0 dimensions; the first dimension must count the samples") }
        let headerSize = 4 + 4 * dimensions
        guard file.count >= headerSize else {
            throw DatasetError("the file is truncated: its header announces \(dimensions) dimensions (\(headerSize) header bytes) but the file has \(file.count) bytes")
        }
        let shape = (0..<dimensions).map { Int(UInt32(bigEndian: file.loadUnaligned(fromByteOffset: 4 + 4 * $0, as: UInt32.self))) }
        try ArrayReading.checkNotEmpty(shape)
        return try ArrayLayout(shape: shape, element: element, dataOffset: headerSize, fileSize: file.count)
    }
}
