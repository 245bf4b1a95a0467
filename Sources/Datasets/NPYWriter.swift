import Foundation

/// Writes NumPy `.npy` files (format 1.0, C order), the header padded as numpy pads it: what
/// `NPYParser` reads, for the benchmark's uploads and the tests.
public enum NPYWriter {
    /// A file of `shape` whose elements are `values`, already encoded as `descr` says (`<f4`, `<i8`, …).
    public static func file(descr: String, shape: [Int], values: some Collection<UInt8>) -> Data {
        let tuple = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(tuple), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var data = Data(NPYParser.magic + [1, 0])
        withUnsafeBytes(of: UInt16(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: Array(header.utf8))
        data.append(contentsOf: values)
        return data
    }

    /// A float32 array.
    public static func float32(shape: [Int], values: [Float]) -> Data {
        values.withUnsafeBytes { file(descr: "<f4", shape: shape, values: $0) }
    }
}
