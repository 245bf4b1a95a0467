import Foundation

// Small IDX and NPY files, byte by byte, for the parsers' tests.

/// An IDX file: `00 00 type ndims`, the dimensions as big-endian UInt32, then `values` (already encoded).
func idxFile(type: UInt8, shape: [Int], values: [UInt8]) -> Data {
    var bytes: [UInt8] = [0, 0, type, UInt8(shape.count)]
    for dimension in shape { bytes += bigEndianBytes(UInt32(dimension)) }
    return Data(bytes + values)
}

/// An NPY file of format `version` with the header numpy writes (padded with spaces to a multiple of 64, then a newline).
func npyFile(descr: String, shape: [Int], fortranOrder: Bool = false, version: UInt8 = 1, values: [UInt8],
             header customHeader: String? = nil) -> Data {
    let tuple = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var header = customHeader ?? "{'descr': '\(descr)', 'fortran_order': \(fortranOrder ? "True" : "False"), 'shape': \(tuple), }"
    let preamble = version == 1 ? 10 : 12
    while (preamble + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
    if version == 1 {
        bytes += littleEndianBytes(UInt16(header.utf8.count))
    } else {
        bytes += littleEndianBytes(UInt32(header.utf8.count))
    }
    return Data(bytes + Array(header.utf8) + values)
}

func bigEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.bigEndian) { Array($0) }
}

func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

extension Array where Element == Float {
    var bigEndianBytes: [UInt8] { flatMap { Encode.bigEndianBytes($0.bitPattern) } }
    var littleEndianBytes: [UInt8] { flatMap { Encode.littleEndianBytes($0.bitPattern) } }
}

extension Array where Element == Double {
    var bigEndianBytes: [UInt8] { flatMap { Encode.bigEndianBytes($0.bitPattern) } }
    var littleEndianBytes: [UInt8] { flatMap { Encode.littleEndianBytes($0.bitPattern) } }
}

/// The module's free functions, named from inside extensions whose members shadow them.
enum Encode {
    static func bigEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
    static func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
}
