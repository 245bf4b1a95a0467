import Foundation

/// A minimal PNG writer: 8-bit greyscale or RGB, no interlacing, the image data in zlib "stored"
/// (uncompressed) deflate blocks, with CRC-32 and Adler-32 computed here. Enough for the sample
/// grids of `GET /v1/jobs/{id}/samples?format=png`; every PNG reader opens it.
enum PNGEncoder {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// `pixels`: `height` rows of `width × channels` bytes, top to bottom; channels 1 (grey) or 3 (RGB).
    static func encode(width: Int, height: Int, channels: Int, pixels: [UInt8]) -> Data {
        precondition(width >= 1 && height >= 1 && (channels == 1 || channels == 3), "unsupported image \(width)×\(height)×\(channels)")
        precondition(pixels.count == width * height * channels, "\(pixels.count) bytes for \(width)×\(height)×\(channels)")
        var png = Data(signature)
        var header: [UInt8] = []
        header += bigEndian(UInt32(width))
        header += bigEndian(UInt32(height))
        // bit depth 8; colour type 0 (grey) or 2 (RGB); compression 0, filter 0, no interlace
        header += [8, channels == 1 ? 0 : 2, 0, 0, 0]
        appendChunk("IHDR", header, to: &png)

        // Each scanline starts with its filter type: 0, none.
        let rowBytes = width * channels
        var scanlines = [UInt8]()
        scanlines.reserveCapacity(height * (rowBytes + 1))
        for row in 0..<height {
            scanlines.append(0)
            scanlines += pixels[(row * rowBytes)..<((row + 1) * rowBytes)]
        }
        appendChunk("IDAT", zlibStored(scanlines), to: &png)
        appendChunk("IEND", [], to: &png)
        return png
    }

    /// A zlib stream (RFC 1950) of deflate blocks of type 0 (RFC 1951 § 3.2.4), at most 65 535 bytes each.
    static func zlibStored(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]  // deflate, 32K window; no preset dictionary; FCHECK makes 0x7801 divisible by 31
        out.reserveCapacity(bytes.count + bytes.count / 65_535 * 5 + 16)
        var start = 0
        repeat {
            let length = min(65_535, bytes.count - start)
            let isFinal = start + length == bytes.count
            out.append(isFinal ? 1 : 0)  // BFINAL, BTYPE = 00
            out += [UInt8(length & 0xFF), UInt8(length >> 8)]
            out += [UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)]
            out += bytes[start..<(start + length)]
            start += length
        } while start < bytes.count
        out += bigEndian(adler32(bytes))
        return out
    }

    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var a: UInt32 = 1, b: UInt32 = 0
        // 5552 bytes is the most that keeps b from overflowing 32 bits before the modulo.
        var index = 0
        while index < bytes.count {
            let end = min(index + 5552, bytes.count)
            for i in index..<end {
                a += UInt32(bytes[i])
                b += a
            }
            a %= 65_521
            b %= 65_521
            index = end
        }
        return b << 16 | a
    }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 as PNG (and zip, and zlib's crc32) computes it.
    static func crc32<Bytes: Sequence>(_ bytes: Bytes) -> UInt32 where Bytes.Element == UInt8 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in bytes { c = crcTable[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    private static func appendChunk(_ type: String, _ data: [UInt8], to png: inout Data) {
        let typeBytes = Array(type.utf8)
        png.append(contentsOf: bigEndian(UInt32(data.count)))
        png.append(contentsOf: typeBytes)
        png.append(contentsOf: data)
        png.append(contentsOf: bigEndian(crc32(typeBytes + data)))
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }

    // MARK: Sample grids

    /// `count` images of `shape` [C, H, W] (C = 1 or 3; `values` row-major, channels first) on a
    /// grid of ⌈√count⌉ columns with 2 black pixels between and around them (torchvision's
    /// `make_grid`). Values map linearly from `range` to 0…255, clamped.
    static func grid(_ values: [Float], count: Int, shape: [Int], range: (min: Float, max: Float)) -> Data {
        precondition(shape.count == 3 && (shape[0] == 1 || shape[0] == 3), "a grid takes [1|3, H, W] samples, got \(shape)")
        let channels = shape[0], height = shape[1], width = shape[2]
        let padding = 2
        let columns = Int(Double(count).squareRoot().rounded(.up))
        let rows = (count + columns - 1) / columns
        let gridWidth = columns * (width + padding) + padding
        let gridHeight = rows * (height + padding) + padding
        var pixels = [UInt8](repeating: 0, count: gridWidth * gridHeight * channels)
        let span = range.max > range.min ? range.max - range.min : 1
        let plane = height * width
        for index in 0..<count {
            let left = padding + (index % columns) * (width + padding)
            let top = padding + (index / columns) * (height + padding)
            let sample = index * channels * plane
            for y in 0..<height {
                for x in 0..<width {
                    for c in 0..<channels {
                        let value = values[sample + c * plane + y * width + x]
                        let level = value.isFinite ? min(max((value - range.min) / span, 0), 1) : 0
                        pixels[((top + y) * gridWidth + left + x) * channels + c] = UInt8((level * 255).rounded())
                    }
                }
            }
        }
        return encode(width: gridWidth, height: gridHeight, channels: channels, pixels: pixels)
    }
}
