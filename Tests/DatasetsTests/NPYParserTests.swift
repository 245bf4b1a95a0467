import Datasets
import Foundation
import Testing

/// Files written by `np.save` (numpy 2.4) when these tests were written.
enum NumpyFiles {
    /// `np.array([[1.5, -2, 0.25], [3, 4, 5]], dtype='<f4')`.
    static let float32Table: [UInt8] = numpyHeader("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }")
        + [0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x80, 0x3e,
           0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0x40, 0x00, 0x00, 0xa0, 0x40]
    /// `np.arange(8, dtype=np.uint8).reshape(2, 2, 2)`.
    static let uint8Images: [UInt8] = numpyHeader("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 2), }")
        + [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]
    /// `np.array([[0.5, 1.0, 0], [1.5, 2.0, 1], [2.5, 3.0, 1]], dtype='<f8')`: the last column a label.
    static let float64WithLabels: [UInt8] = numpyHeader("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 3), }")
        + [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xe0, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f,
           0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f,
           0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f,
           0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x40,
           0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f]
    /// `gzip.compress(<uint8Images>, mtime=0)`, by Python.
    static let uint8ImagesGzip: [UInt8] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x9b, 0xec, 0x17, 0xea, 0x1b, 0x10, 0xc9, 0xc8, 0x50, 0xc6,
        0x50, 0xad, 0x9e, 0x92, 0x5a, 0x9c, 0x5c, 0xa4, 0x6e, 0xa5, 0xa0, 0x5e, 0x53, 0x6a, 0xa8, 0xae, 0xa3, 0xa0, 0x9e, 0x96,
        0x5f, 0x54, 0x52, 0x94, 0x98, 0x17, 0x9f, 0x5f, 0x94, 0x92, 0x0a, 0x12, 0x77, 0x4b, 0xcc, 0x29, 0x4e, 0x05, 0x8a, 0x17,
        0x67, 0x24, 0x16, 0xa4, 0x02, 0xf9, 0x1a, 0x46, 0x3a, 0x0a, 0x20, 0xa4, 0xa9, 0xa3, 0x50, 0xab, 0x40, 0x1e, 0xe0, 0x62,
        0x60, 0x64, 0x62, 0x66, 0x61, 0x65, 0x63, 0x07, 0x00, 0x61, 0x60, 0xfd, 0xb5, 0x88, 0x00, 0x00, 0x00,
    ]
    /// `np.array([3, 1, 3, 2], dtype='<i8')`.
    static let int64Labels: [UInt8] = numpyHeader("{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }")
        + [0x03, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0]

    /// numpy's version 1.0 preamble and header: `\x93NUMPY`, 1, 0, the length 118 (0x76), the dict
    /// padded with spaces to 127 bytes, a newline (128 bytes in all, numpy 2's alignment).
    private static func numpyHeader(_ dict: String) -> [UInt8] {
        let padded = dict + String(repeating: " ", count: 117 - dict.utf8.count) + "\n"
        return [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00] + Array(padded.utf8)
    }
}

@Suite("NPYParser")
struct NPYParserTests {
    // MARK: Files numpy wrote

    @Test("a float32 (N, D) array is N samples of [D]")
    func float32() throws {
        #expect(NumpyFiles.float32Table.count == 152)  // as np.save wrote it
        let samples = try NPYParser.readSamples(data: Data(NumpyFiles.float32Table))
        #expect(samples.rows == 2 && samples.sampleShape == [3] && samples.arrayShape == [2, 3])
        #expect(samples.features == [1.5, -2, 0.25, 3, 4, 5])
        #expect(samples.elementType == "<f4")
        #expect(samples.featureCount == 3)
    }

    @Test("a uint8 (N, H, W) array is one-channel images [1, H, W], values kept as stored")
    func uint8Images() throws {
        let samples = try NPYParser.readSamples(data: Data(NumpyFiles.uint8Images))
        #expect(samples.rows == 2 && samples.sampleShape == [1, 2, 2])
        #expect(samples.features == (0..<8).map(Float.init))
    }

    @Test("target=last: a float64 (N, D) table's last column is the target, inferred as for CSV")
    func tableWithTarget() throws {
        let dataset = try NPYParser.readTable(data: Data(NumpyFiles.float64WithLabels))
        #expect(dataset.rows == 3 && dataset.featureCount == 2 && dataset.sampleShape == [2])
        #expect(dataset.features == [0.5, 1, 1.5, 2, 2.5, 3])
        #expect(dataset.task == .classification && dataset.classes == ["0", "1"] && dataset.classIndices == [0, 1, 1])
        #expect(dataset.targetName == "last")
        let regression = try NPYParser.readTable(data: Data(NumpyFiles.float64WithLabels), task: .regression)
        #expect(regression.task == .regression && regression.targetValues == [0, 1, 1])
    }

    @Test("int64 labels read exactly")
    func int64Labels() throws {
        let labels = try NPYParser.readLabels(data: Data(NumpyFiles.int64Labels))
        #expect(labels == [3, 1, 3, 2])
        #expect(try DatasetTargets(labels: labels).classes == ["1", "2", "3"])
    }

    // MARK: Hand-made files

    @Test("format versions 2.0 and 3.0 (4-byte header length) read as 1.0 does")
    func versions() throws {
        for version: UInt8 in [1, 2, 3] {
            let file = npyFile(descr: "<f4", shape: [2, 2], version: version, values: [Float(1), 2, 3, 4].littleEndianBytes)
            let samples = try NPYParser.readSamples(data: file)
            #expect(samples.features == [1, 2, 3, 4], "version \(version)")
        }
        expectDatasetError(naming: ["version is 4.0", "1.0, 2.0 and 3.0"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: npyFile(descr: "<f4", shape: [1, 1], version: 4, values: [0, 0, 0, 0]))
        }
    }

    @Test("integer, bool and big-endian element types")
    func elementTypes() throws {
        let int32 = npyFile(descr: "<i4", shape: [1, 2], values: littleEndianBytes(Int32(-5)) + littleEndianBytes(Int32(70000)))
        #expect(try NPYParser.readSamples(data: int32).features == [-5, 70000])
        let uint16 = npyFile(descr: "<u2", shape: [1, 2], values: littleEndianBytes(UInt16(65535)) + littleEndianBytes(UInt16(1)))
        #expect(try NPYParser.readSamples(data: uint16).features == [65535, 1])
        let int8 = npyFile(descr: "|i1", shape: [1, 2], values: [0xfe, 0x05])
        #expect(try NPYParser.readSamples(data: int8).features == [-2, 5])
        let bools = npyFile(descr: "|b1", shape: [3], values: [1, 0, 1])
        #expect(try NPYParser.readLabels(data: bools) == [1, 0, 1])
        let bigEndian = npyFile(descr: ">f8", shape: [1, 2], values: [Double(0.25), -8].bigEndianBytes)
        #expect(try NPYParser.readSamples(data: bigEndian).features == [0.25, -8])
        let uint8Labels = npyFile(descr: "|u1", shape: [3, 1], values: [9, 8, 9])
        #expect(try NPYParser.readLabels(data: uint8Labels) == [9, 8, 9])
    }

    @Test("header spellings numpy and Python 2 wrote: key order, double quotes, long integers")
    func headerSpellings() throws {
        let values = [Float(1), 2].littleEndianBytes
        let reordered = npyFile(descr: "", shape: [], values: values,
                                header: #"{"shape": (1L, 2L), "fortran_order": False, "descr": "<f4"}"#)
        #expect(try NPYParser.readSamples(data: reordered).sampleShape == [2])
    }

    @Test("a gzip-compressed .npy file reads as the plain file does")
    func gzip() throws {
        let plain = try NPYParser.readSamples(data: Data(NumpyFiles.uint8Images))
        #expect(try NPYParser.readSamples(data: Data(NumpyFiles.uint8ImagesGzip)) == plain)
    }

    // MARK: Refused files

    @Test("Fortran order is refused with how to save in C order")
    func fortranOrder() {
        expectDatasetError(naming: ["Fortran", "np.ascontiguousarray"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: npyFile(descr: "<f4", shape: [2, 2], fortranOrder: true, values: [Float(1), 2, 3, 4].littleEndianBytes))
        }
    }

    @Test("unsupported dtypes are named: float16, strings, objects, structured arrays")
    func unsupportedTypes() {
        expectDatasetError(naming: ["'<f2'", "float16", "float32"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: npyFile(descr: "<f2", shape: [1, 1], values: [0, 0]))
        }
        expectDatasetError(naming: ["'<U5'", "unicode strings"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: npyFile(descr: "<U5", shape: [1, 1], values: Array(repeating: 0, count: 20)))
        }
        expectDatasetError(naming: ["'|O'", "Python objects"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: npyFile(descr: "|O", shape: [1, 1], values: Array(repeating: 0, count: 8)))
        }
        let structured = npyFile(descr: "", shape: [], values: [0, 0, 0, 0, 0, 0, 0, 0],
                                 header: "{'descr': [('x', '<f4'), ('y', '<f4')], 'fortran_order': False, 'shape': (1,), }")
        expectDatasetError(naming: ["structured dtype"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: structured)
        }
    }

    @Test("NaN and infinite values are refused with their index; float64 beyond float32 too")
    func nonFinite() {
        let error = expectDatasetError(naming: ["index [1, 2]", "NaN"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: npyFile(descr: "<f4", shape: [2, 3], values: [Float(0), 1, 2, 3, 4, .nan].littleEndianBytes))
        }
        #expect(error?.row == 2)
        expectDatasetError(naming: ["index [0, 1]", "infinite"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: npyFile(descr: "<f8", shape: [1, 2], values: [Double(0), .infinity].littleEndianBytes))
        }
        expectDatasetError(naming: ["index [1, 0]", "beyond the range of float32"]) { () throws(DatasetError) in
            _ = try NPYParser.readTable(data: npyFile(descr: "<f8", shape: [2, 2], values: [Double(0), 1, 1e39, 0].littleEndianBytes))
        }
        expectDatasetError(naming: ["index [2]", "NaN"]) { () throws(DatasetError) in
            _ = try NPYParser.readLabels(data: npyFile(descr: "<f8", shape: [3], values: [Double(0), 1, .nan].littleEndianBytes))
        }
    }

    @Test("other files are recognised: IDX, .npz, text")
    func notNPY() {
        expectDatasetError(naming: ["IDX file", "format=idx"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: threeImages)
        }
        expectDatasetError(naming: ["zip archive", ".npz"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: Data([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00]))
        }
        expectDatasetError(naming: ["not an .npy file", "78 2c 79 0a"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: Data("x,y\n1,2\n".utf8))
        }
    }

    @Test("truncated files, extra bytes, a malformed header and missing keys are refused")
    func badFiles() {
        let file = npyFile(descr: "<f4", shape: [2, 3], values: [Float](repeating: 1, count: 6).littleEndianBytes)
        expectDatasetError(naming: ["truncated", "[2, 3]", "<f4", "24 bytes", "only 20"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: file.dropLast(4))
        }
        expectDatasetError(naming: ["truncated", "header"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: file.prefix(40))
        }
        expectDatasetError(naming: ["2 bytes more"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: file + Data([0, 0]))
        }
        expectDatasetError(naming: ["not a valid dict literal"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: npyFile(descr: "", shape: [], values: [], header: "{'descr': '<f4', 'shape': (2, 3"))
        }
        expectDatasetError(naming: ["no 'shape'"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: npyFile(descr: "", shape: [], values: [], header: "{'descr': '<f4', 'fortran_order': False}"))
        }
        expectDatasetError(naming: ["no dimensions"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: npyFile(descr: "<f4", shape: [], values: [0, 0, 0, 0],
                                                        header: "{'descr': '<f4', 'fortran_order': False, 'shape': (), }"))
        }
    }

    @Test("shapes that do not fit what the upload means are refused, naming the shape")
    func wrongShapes() {
        expectDatasetError(naming: ["one dimension", "labels file", "labels_of"]) { () throws(DatasetError) in
            _ = try NPYParser.readSamples(data: Data(NumpyFiles.int64Labels))
        }
        expectDatasetError(naming: ["one value per sample", "[2, 3]"]) { () throws(DatasetError) in
            _ = try NPYParser.readLabels(data: Data(NumpyFiles.float32Table))
        }
        expectDatasetError(naming: ["target=last", "2-D", "[2, 2, 2]"]) { () throws(DatasetError) in
            _ = try NPYParser.readTable(data: Data(NumpyFiles.uint8Images))
        }
        expectDatasetError(naming: ["target=last", "[4]"]) { () throws(DatasetError) in
            _ = try NPYParser.readTable(data: Data(NumpyFiles.int64Labels))
        }
    }
}
