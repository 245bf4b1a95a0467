import Foundation
import Tensors

/// The safetensors file format (huggingface/safetensors): an 8-byte little-endian header length,
/// a JSON header naming each tensor's dtype, shape and byte range, then the raw little-endian data.
/// String-to-string `__metadata__` rides in the header.
public struct SafeTensorsFile: Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let shape: [Int]
        /// The values of an F32 tensor (empty for U8).
        public let values: [Float]
        /// The bytes of a U8 tensor (packed integer codes of a quantized weight); nil for F32.
        public let bytes: [UInt8]?
        public init(name: String, shape: [Int], values: [Float]) {
            self.name = name
            self.shape = shape
            self.values = values
            self.bytes = nil
        }
        public init(name: String, shape: [Int], bytes: [UInt8]) {
            self.name = name
            self.shape = shape
            self.values = []
            self.bytes = bytes
        }
        var byteCount: Int { bytes?.count ?? values.count * MemoryLayout<Float>.size }
    }

    public var tensors: [Entry]
    public var metadata: [String: String]

    public init(tensors: [Entry], metadata: [String: String]) {
        self.tensors = tensors
        self.metadata = metadata
    }

    public func tensor(named name: String) -> Entry? { tensors.first { $0.name == name } }

    /// The file's bytes. Tensors are laid out in the given order; the header is padded with spaces
    /// to a multiple of 8 bytes so the data is aligned.
    public func serialized() -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for entry in tensors {
            let size = entry.byteCount
            header[entry.name] = ["dtype": entry.bytes == nil ? "F32" : "U8", "shape": entry.shape, "data_offsets": [offset, offset + size]] as [String: Any]
            offset += size
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var headerData = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8)
        while headerData.count % 8 != 0 { headerData.append(0x20) }
        var data = Data(capacity: 8 + headerData.count + offset)
        withUnsafeBytes(of: UInt64(headerData.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(headerData)
        for entry in tensors {
            if let bytes = entry.bytes {
                data.append(contentsOf: bytes)
                continue
            }
            entry.values.withUnsafeBufferPointer { buffer in
                if Int(1).littleEndian == 1 {
                    data.append(UnsafeBufferPointer(start: UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: UInt8.self),
                                                    count: buffer.count * 4))
                } else {
                    for value in buffer { withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
                }
            }
        }
        return data
    }

    public enum FormatError: Error, CustomStringConvertible {
        case malformed(String)
        public var description: String {
            switch self { case .malformed(let message): "not a valid safetensors file: \(message)" }
        }
    }

    /// Parses a file with F32 tensors (and U8 ones, which hold a quantized model's packed codes).
    public static func parse(_ data: Data) throws -> SafeTensorsFile {
        guard data.count >= 8 else { throw FormatError.malformed("shorter than its 8-byte header length") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8) else { throw FormatError.malformed("header length \(headerLength) exceeds the file") }
        let headerStart = data.startIndex + 8
        let dataStart = headerStart + Int(headerLength)
        guard let header = try? JSONSerialization.jsonObject(with: data[headerStart..<dataStart]) as? [String: Any] else {
            throw FormatError.malformed("header is not a JSON object")
        }
        let metadata = header["__metadata__"] as? [String: String] ?? [:]
        var entries: [(start: Int, end: Int, entry: Entry)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else { throw FormatError.malformed("tensor \(name) has no dtype/shape/data_offsets") }
            guard dtype == "F32" || dtype == "U8" else { throw FormatError.malformed("tensor \(name) is \(dtype); only F32 and U8 are supported") }
            let count = shape.reduce(1, *)
            guard offsets[0] >= 0, offsets[1] - offsets[0] == count * (dtype == "U8" ? 1 : 4), dataStart + offsets[1] <= data.endIndex else {
                throw FormatError.malformed("tensor \(name) has inconsistent offsets")
            }
            if dtype == "U8" {
                let bytes = [UInt8](data[(dataStart + offsets[0])..<(dataStart + offsets[1])])
                entries.append((offsets[0], offsets[1], Entry(name: name, shape: shape, bytes: bytes)))
                continue
            }
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBytes { destination in
                _ = data.copyBytes(to: destination, from: (dataStart + offsets[0])..<(dataStart + offsets[1]))
            }
            if Int(1).littleEndian != 1 { values = values.map { Float(bitPattern: $0.bitPattern.byteSwapped) } }
            entries.append((offsets[0], offsets[1], Entry(name: name, shape: shape, values: values)))
        }
        // File order is data order. An empty tensor shares its start with the next one, so ties sort by end
        // (then name, for several empty tensors at one offset) to keep the order independent of the header's.
        let ordered = entries.sorted { ($0.start, $0.end, $0.entry.name) < ($1.start, $1.end, $1.entry.name) }
        return SafeTensorsFile(tensors: ordered.map(\.entry), metadata: metadata)
    }
}
