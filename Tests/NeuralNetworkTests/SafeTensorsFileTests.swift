import Foundation
import NeuralNetwork
import Tensors
import Testing

@Suite("SafeTensorsFile")
struct SafeTensorsFileTests {
    /// The weights of a small network, as the saved model holds them.
    func networkFile() throws -> SafeTensorsFile {
        let (spec, _) = try parseModel(NetworkTests.specJSON)
        let network = Network(spec: try #require(spec), seed: 42)
        let entries = network.namedParameters.map {
            SafeTensorsFile.Entry(name: $0.name, shape: $0.parameter.shape, values: $0.parameter.value.array)
        }
        return SafeTensorsFile(tensors: entries, metadata: ["format": "pt", "model": network.spec.jsonValue.encodedString()])
    }

    /// The header's length and its JSON text.
    func header(of data: Data) throws -> (length: Int, text: String) {
        let bytes = [UInt8](data)
        try #require(bytes.count >= 8)
        let length = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
        try #require(8 + length <= bytes.count)
        return (length, String(decoding: bytes[8..<(8 + length)], as: UTF8.self))
    }

    @Test("serialize then parse gives back every tensor, in order, bit for bit, and the metadata")
    func roundTrip() throws {
        let file = try networkFile()
        let data = file.serialized()
        let parsed = try SafeTensorsFile.parse(data)
        #expect(parsed.tensors.map(\.name) == file.tensors.map(\.name))
        for (a, b) in zip(parsed.tensors, file.tensors) {
            #expect(a.shape == b.shape)
            #expect(a.values.map(\.bitPattern) == b.values.map(\.bitPattern), "\(a.name)")
        }
        #expect(parsed.metadata == file.metadata)
        #expect(parsed.tensor(named: "layers.2.bias")?.shape == [3])

        // A copy for an outside reader (the safetensors Python package); the test itself needs no Python.
        if let path = ProcessInfo.processInfo.environment["DESCENT_SAFETENSORS_EXPORT"], !path.isEmpty {
            try data.write(to: URL(fileURLWithPath: path))
        }
    }

    @Test("special values and odd shapes survive the round trip")
    func specialValues() throws {
        let values: [Float] = [0, -0.0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1e-30]
        let file = SafeTensorsFile(tensors: [
            .init(name: "special", shape: [2, 4], values: values),
            .init(name: "scalar", shape: [], values: [3.5]),
            .init(name: "empty", shape: [0, 5], values: []),
            .init(name: "rank3", shape: [1, 2, 1], values: [7, 8]),
        ], metadata: [:])
        let parsed = try SafeTensorsFile.parse(file.serialized())
        #expect(parsed.tensors.map(\.name) == ["special", "scalar", "empty", "rank3"])
        #expect(parsed.tensor(named: "special")?.values.map(\.bitPattern) == values.map(\.bitPattern))
        #expect(parsed.tensor(named: "scalar")?.shape == [])
        #expect(parsed.tensor(named: "scalar")?.values == [3.5])
        #expect(parsed.tensor(named: "empty")?.shape == [0, 5])
        #expect(parsed.tensor(named: "empty")?.values == [])
        #expect(parsed.metadata.isEmpty)
    }

    @Test("empty tensors keep their place although they share a data offset with the next tensor")
    func emptyTensorsKeepTheirPlace() throws {
        // The header is a JSON object, read back in no particular order: only the offsets give the order.
        // Eight ties make a lucky pass of an order-dependent parser unlikely (2⁻⁸).
        let entries = (0..<8).flatMap { i in
            [SafeTensorsFile.Entry(name: "z\(i)", shape: [0], values: []),
             SafeTensorsFile.Entry(name: "a\(i)", shape: [1], values: [Float(i)])]
        }
        let parsed = try SafeTensorsFile.parse(SafeTensorsFile(tensors: entries, metadata: [:]).serialized())
        #expect(parsed.tensors.map(\.name) == entries.map(\.name))
    }

    @Test("the header length is a multiple of 8 whatever the names' lengths", arguments: 1...16)
    func headerIsAligned(nameLength: Int) throws {
        let file = SafeTensorsFile(tensors: [.init(name: String(repeating: "w", count: nameLength), shape: [3], values: [1, 2, 3])],
                                   metadata: nameLength.isMultiple(of: 2) ? ["note": "x"] : [:])
        let data = file.serialized()
        let (length, text) = try header(of: data)
        #expect(length % 8 == 0)
        #expect(text.hasPrefix("{"))
        #expect(text.trimmingCharacters(in: .whitespaces).hasSuffix("}"), "padding is spaces after the JSON")
        #expect(data.count == 8 + length + 3 * 4)
        #expect(try SafeTensorsFile.parse(data).tensors.first?.values == [1, 2, 3])
    }

    @Test("the header describes each tensor as F32 with its shape and contiguous data offsets")
    func headerContents() throws {
        let data = try networkFile().serialized()
        let (_, text) = try header(of: data)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["__metadata__", "layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"])
        var end = 0
        for name in ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"] {
            let info = try #require(object[name] as? [String: Any])
            #expect(info["dtype"] as? String == "F32")
            let shape = try #require(info["shape"] as? [Int])
            let offsets = try #require(info["data_offsets"] as? [Int])
            #expect(offsets == [end, end + shape.reduce(1, *) * 4], "\(name)")
            end = offsets[1]
        }
        #expect(object["__metadata__"] as? [String: String] != nil)
    }

    @Test("values are stored little-endian right after the header")
    func littleEndianData() throws {
        let data = SafeTensorsFile(tensors: [.init(name: "x", shape: [1], values: [1])], metadata: [:]).serialized()
        let (length, _) = try header(of: data)
        #expect([UInt8](data.suffix(from: 8 + length)) == [0x00, 0x00, 0x80, 0x3F])
    }

    @Test("malformed files are rejected with an error, not a crash")
    func rejectsMalformed() throws {
        let good = SafeTensorsFile(tensors: [.init(name: "x", shape: [2], values: [1, 2])], metadata: [:]).serialized()
        let (length, text) = try header(of: good)
        func withHeader(_ json: String) -> Data {
            var data = Data()
            let bytes = Array(json.utf8)
            withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { data.append(contentsOf: $0) }
            data.append(contentsOf: bytes)
            data.append(good.suffix(from: 8 + length))
            return data
        }
        #expect(throws: SafeTensorsFile.FormatError.self) { try SafeTensorsFile.parse(Data([1, 2, 3])) }
        #expect(throws: SafeTensorsFile.FormatError.self) { try SafeTensorsFile.parse(good.prefix(8 + length - 1)) }
        #expect(throws: SafeTensorsFile.FormatError.self) { try SafeTensorsFile.parse(good.prefix(good.count - 1)) }
        #expect(throws: SafeTensorsFile.FormatError.self) { try SafeTensorsFile.parse(withHeader("[1]")) }
        #expect(throws: SafeTensorsFile.FormatError.self) {
            try SafeTensorsFile.parse(withHeader(text.replacingOccurrences(of: "F32", with: "F16")))
        }
        #expect(throws: SafeTensorsFile.FormatError.self) {
            try SafeTensorsFile.parse(withHeader(#"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#))
        }
        #expect(throws: SafeTensorsFile.FormatError.self) {
            try SafeTensorsFile.parse(withHeader(#"{"x":{"dtype":"F32","shape":[2]}}"#))
        }
        #expect(throws: Never.self) { try SafeTensorsFile.parse(withHeader(text)) }
    }
}

@Suite("SafeTensorsFile U8 tensors")
struct SafeTensorsU8Tests {
    @Test("U8 tensors (packed quantized codes) round-trip beside F32 ones, with their dtype in the header")
    func u8RoundTrip() throws {
        let file = SafeTensorsFile(tensors: [
            .init(name: "a.codes", shape: [5], bytes: [0, 1, 127, 128, 255]),
            .init(name: "a.scale", shape: [1], values: [0.25]),
        ], metadata: ["format": "descent"])
        let data = file.serialized()
        let parsed = try SafeTensorsFile.parse(data)
        #expect(parsed.tensor(named: "a.codes")?.bytes == [0, 1, 127, 128, 255])
        #expect(parsed.tensor(named: "a.scale")?.values == [0.25])
        #expect(parsed.tensor(named: "a.scale")?.bytes == nil)
        let header = String(decoding: data[8...], as: UTF8.self)
        #expect(header.contains(#""a.codes":{"data_offsets":[0,5],"dtype":"U8","shape":[5]}"#))
    }
}
