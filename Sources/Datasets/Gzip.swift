import CZlib
import Foundation

/// gzip files (RFC 1952), decompressed with the system zlib: Foundation on Linux has no gzip API.
public enum Gzip {
    /// Whether `data` starts with gzip's magic bytes `1f 8b`.
    public static func isCompressed(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1f && data[data.startIndex + 1] == 0x8b
    }

    /// `data` decompressed if it is gzip, as is otherwise.
    public static func decompressIfNeeded(_ data: Data, maxBytes: Int = .max) throws(DatasetError) -> Data {
        isCompressed(data) ? try decompress(data, maxBytes: maxBytes) : data
    }

    /// The decompressed bytes of every member of a gzip file (`cat a.gz b.gz` is a valid file too).
    ///
    /// - Parameter maxBytes: the most bytes the result may have; a gzip file can expand a
    ///   thousandfold, so a size limit on the upload alone does not bound memory.
    public static func decompress(_ data: Data, maxBytes: Int = .max) throws(DatasetError) -> Data {
        guard isCompressed(data) else { throw DatasetError("the data is not gzip: it does not start with 1f 8b") }
        // The last member's ISIZE (its size mod 2^32) is a good first guess for a one-member file;
        // deflate expands at most about 1032-fold, which bounds a wrong guess.
        var capacity = max(data.count * 2, 1 << 16)
        if data.count >= 18 {
            let size = data.suffix(4).reversed().reduce(0) { ($0 << 8) | Int($1) }
            if size > 0 { capacity = min(size + 1, data.count * 1032) }
        }
        if maxBytes < .max { capacity = min(capacity, maxBytes + 1) }
        var output = Data(count: capacity)
        var produced = 0
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DatasetError("cannot decompress the gzip data: zlib failed to start")
        }
        defer { inflateEnd(&stream) }

        let outcome: Outcome = data.withUnsafeBytes { (input: UnsafeRawBufferPointer) -> Outcome in
            let start = input.bindMemory(to: Bytef.self).baseAddress!
            var consumed = 0
            var members = 0
            while true {
                // Input and output go to zlib in pieces of at most 1 GiB (its counters are 32-bit).
                let inputPiece = min(input.count - consumed, 1 << 30)
                stream.next_in = UnsafeMutablePointer(mutating: start + consumed)
                stream.avail_in = uInt(inputPiece)
                if produced == output.count {
                    guard produced <= maxBytes else { return .tooLarge }
                    let grown = produced > Int.max / 2 ? Int.max : produced * 2
                    output.count = min(grown, maxBytes == .max ? grown : maxBytes + 1)
                }
                let outputPiece = min(output.count - produced, 1 << 30)
                let status = output.withUnsafeMutableBytes { (buffer: UnsafeMutableRawBufferPointer) -> Int32 in
                    stream.next_out = buffer.bindMemory(to: Bytef.self).baseAddress! + produced
                    stream.avail_out = uInt(outputPiece)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                consumed += inputPiece - Int(stream.avail_in)
                produced += outputPiece - Int(stream.avail_out)
                if produced > maxBytes { return .tooLarge }
                switch status {
                case Z_STREAM_END:
                    members += 1
                    let rest = UnsafeRawBufferPointer(rebasing: input[consumed...])
                    if rest.isEmpty { return .done }
                    if rest.count >= 2 && rest[0] == 0x1f && rest[1] == 0x8b {
                        guard inflateReset(&stream) == Z_OK else { return .corrupt("zlib failed to restart") }
                        continue
                    }
                    // gzip(1) ignores zero padding after the last member; so do we.
                    if rest.allSatisfy({ $0 == 0 }) { return .done }
                    return .trailingData(offset: consumed, members: members)
                case Z_OK:
                    continue
                case Z_BUF_ERROR:
                    // No progress possible: either the output is full (grown above) or the input ran out.
                    if stream.avail_out == 0 { continue }
                    return .truncated
                case Z_MEM_ERROR:
                    return .corrupt("out of memory")
                default:
                    return .corrupt(stream.msg.map { String(cString: $0) } ?? "zlib error \(status)")
                }
            }
        }
        switch outcome {
        case .done:
            output.count = produced
            return output
        case .tooLarge:
            throw DatasetError("the gzip data decompresses to more than \(maxBytes) bytes, the upload limit")
        case .truncated:
            throw DatasetError("the gzip data is truncated: it ends before its compressed stream does (was the upload cut short?)")
        case .corrupt(let reason):
            throw DatasetError("the gzip data is corrupt (\(reason))")
        case .trailingData(let offset, let members):
            throw DatasetError("the \(data.count - offset) bytes after the end of the gzip data (byte \(offset), after \(members) \(members == 1 ? "member" : "members")) are not gzip")
        }
    }

    private enum Outcome {
        case done, tooLarge, truncated
        case corrupt(String)
        case trailingData(offset: Int, members: Int)
    }
}
