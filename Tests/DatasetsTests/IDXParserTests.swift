import Datasets
import Foundation
import Testing

/// gzip files made with Python's `gzip.compress(…, mtime=0)` when these tests were written, so
/// the reader is checked against another implementation than the zlib it calls.
enum PythonGzip {
    /// Three 2×2 ubyte images: `00 00 08 03`, dimensions 3, 2, 2, then the bytes 0…11.
    static let images: [UInt8] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x63, 0x60, 0xe0, 0x60, 0x66, 0x60, 0x60, 0x00, 0x61, 0x26,
        0x30, 0x66, 0x64, 0x62, 0x66, 0x61, 0x65, 0x63, 0xe7, 0xe0, 0xe4, 0xe2, 0x06, 0x00, 0x63, 0x44, 0x6f, 0xc6, 0x1c, 0x00,
        0x00, 0x00,
    ]
    /// Their labels: `00 00 08 01`, dimension 3, then 7, 2, 7.
    static let labels: [UInt8] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x63, 0x60, 0xe0, 0x60, 0x64, 0x60, 0x60, 0x60, 0x66, 0x67,
        0x62, 0x07, 0x00, 0x20, 0x5d, 0x5d, 0xa7, 0x0b, 0x00, 0x00, 0x00,
    ]
    /// The images file as two gzip members (its first 10 bytes, then the rest), as `cat a.gz b.gz` makes.
    static let imagesInTwoMembers: [UInt8] = [
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x63, 0x60, 0xe0, 0x60, 0x66, 0x60, 0x60, 0x00, 0x62, 0x00,
        0x07, 0xd7, 0xc1, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x63, 0x60,
        0x62, 0x60, 0x60, 0x60, 0x62, 0x60, 0x64, 0x62, 0x66, 0x61, 0x65, 0x63, 0xe7, 0xe0, 0xe4, 0xe2, 0x06, 0x00, 0xcb, 0xe5,
        0xde, 0x3a, 0x12, 0x00, 0x00, 0x00,
    ]
}

/// The images of `PythonGzip.images`, uncompressed.
let threeImages = idxFile(type: 0x08, shape: [3, 2, 2], values: Array(0..<12))

/// Runs `body`, expecting a `DatasetError` whose message contains every string of `naming`.
@discardableResult
func expectDatasetError(naming: [String], sourceLocation: SourceLocation = #_sourceLocation,
                        _ body: () throws(DatasetError) -> Void) -> DatasetError? {
    do {
        try body()
        Issue.record("no error; expected one naming \(naming)", sourceLocation: sourceLocation)
        return nil
    } catch {
        for word in naming {
            #expect(error.message.contains(word), "\"\(error.message)\" does not name \(word)", sourceLocation: sourceLocation)
        }
        return error
    }
}

@Suite("IDXParser")
struct IDXParserTests {
    // MARK: Images and labels

    @Test("N×H×W ubyte images are one-channel samples [1, H, W], values kept as stored")
    func images() throws {
        let samples = try IDXParser.readSamples(data: threeImages)
        #expect(samples.rows == 3)
        #expect(samples.sampleShape == [1, 2, 2])
        #expect(samples.arrayShape == [3, 2, 2])
        #expect(samples.featureCount == 4)
        #expect(samples.elementType == "ubyte")
        // Not scaled to [0, 1]: preprocessing.standardize puts features on a common scale.
        #expect(samples.features == (0..<12).map(Float.init))
    }

    @Test("ubyte labels read as numbers; the classes are their distinct values, sorted")
    func labels() throws {
        let labels = try IDXParser.readLabels(data: idxFile(type: 0x08, shape: [4], values: [7, 2, 7, 0]))
        #expect(labels == [7, 2, 7, 0])
        let targets = try DatasetTargets(labels: labels)
        #expect(targets.task == .classification)
        #expect(targets.classes == ["0", "2", "7"])
        #expect(targets.classIndices == [2, 1, 2, 0])
        #expect(targets.values.isEmpty)
    }

    @Test("images and labels make a classification dataset of the images' shape")
    func imagesWithLabels() throws {
        let samples = try IDXParser.readSamples(data: threeImages)
        let labels = try IDXParser.readLabels(data: idxFile(type: 0x08, shape: [3], values: [1, 0, 1]))
        let dataset = try TabularDataset(samples: samples, targets: DatasetTargets(labels: labels))
        #expect(dataset.rows == 3 && dataset.featureCount == 4 && dataset.sampleShape == [1, 2, 2])
        #expect(dataset.task == .classification && dataset.classes == ["0", "1"] && dataset.targetCount == 2)
        #expect(dataset.classIndices == [1, 0, 1])
        #expect(dataset.features == samples.features)
    }

    @Test("labels and samples of different counts are refused, naming both counts")
    func labelCountMismatch() throws {
        let samples = try IDXParser.readSamples(data: threeImages)
        let targets = try DatasetTargets(labels: [1, 0])
        expectDatasetError(naming: ["2 labels", "3 samples"]) { () throws(DatasetError) in
            _ = try TabularDataset(samples: samples, targets: targets)
        }
    }

    @Test("N×D is samples of [D]; N×C×H×W is samples of [C, H, W]")
    func otherShapes() throws {
        let table = try IDXParser.readSamples(data: idxFile(type: 0x08, shape: [2, 3], values: [1, 2, 3, 4, 5, 6]))
        #expect(table.sampleShape == [3] && table.rows == 2)
        let colour = try IDXParser.readSamples(data: idxFile(type: 0x08, shape: [2, 3, 1, 2], values: Array(0..<12)))
        #expect(colour.sampleShape == [3, 1, 2] && colour.rows == 2)
        #expect(colour.features == (0..<12).map(Float.init))
    }

    @Test("every IDX type reads big-endian: byte, short, int, float, double")
    func elementTypes() throws {
        let bytes = try IDXParser.readSamples(data: idxFile(type: 0x09, shape: [1, 3], values: [0xff, 0x80, 0x7f]))
        #expect(bytes.features == [-1, -128, 127])
        let shorts = try IDXParser.readSamples(data: idxFile(type: 0x0B, shape: [1, 2],
                                                             values: bigEndianBytes(Int16(-300)) + bigEndianBytes(Int16(1000))))
        #expect(shorts.features == [-300, 1000])
        let ints = try IDXParser.readSamples(data: idxFile(type: 0x0C, shape: [2, 1],
                                                           values: bigEndianBytes(Int32(-70000)) + bigEndianBytes(Int32(16_000_000))))
        #expect(ints.features == [-70000, 16_000_000])
        let floats = try IDXParser.readSamples(data: idxFile(type: 0x0D, shape: [1, 2], values: [Float(0.5), -2.25].bigEndianBytes))
        #expect(floats.features == [0.5, -2.25] && floats.elementType == "float")
        let doubles = try IDXParser.readSamples(data: idxFile(type: 0x0E, shape: [1, 2], values: [Double(0.125), 1e10].bigEndianBytes))
        #expect(doubles.features == [0.125, 1e10])
        let intLabels = try IDXParser.readLabels(data: idxFile(type: 0x0C, shape: [2], values: bigEndianBytes(Int32(123_456_789)) + bigEndianBytes(Int32(-1))))
        #expect(intLabels == [123_456_789, -1])
    }

    @Test("labels of shape (N, 1) are read as N labels")
    func columnOfLabels() throws {
        #expect(try IDXParser.readLabels(data: idxFile(type: 0x08, shape: [3, 1], values: [4, 5, 6])) == [4, 5, 6])
    }

    // MARK: gzip

    @Test("gzip-compressed images and labels read as the plain files do")
    func gzip() throws {
        let compressed = try IDXParser.readSamples(data: Data(PythonGzip.images))
        #expect(compressed == (try IDXParser.readSamples(data: threeImages)))
        #expect(try IDXParser.readLabels(data: Data(PythonGzip.labels)) == [7, 2, 7])
        #expect(Gzip.isCompressed(Data(PythonGzip.images)) && !Gzip.isCompressed(threeImages))
        #expect(try Gzip.decompress(Data(PythonGzip.images)) == threeImages)
    }

    @Test("a gzip file of several members decompresses to their concatenation")
    func gzipMembers() throws {
        #expect(try Gzip.decompress(Data(PythonGzip.imagesInTwoMembers)) == threeImages)
        #expect(try IDXParser.readSamples(data: Data(PythonGzip.imagesInTwoMembers)).rows == 3)
        // Zero padding after the last member is ignored, as gzip(1) does.
        #expect(try Gzip.decompress(Data(PythonGzip.images + [0, 0, 0, 0])) == threeImages)
    }

    @Test("truncated, corrupt or oversized gzip data is refused with what is wrong")
    func badGzip() {
        expectDatasetError(naming: ["truncated"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: Data(PythonGzip.images.prefix(25)))
        }
        var corrupt = PythonGzip.images
        corrupt[12] ^= 0xff
        corrupt[13] ^= 0xff
        expectDatasetError(naming: ["gzip data is corrupt"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: Data(corrupt))
        }
        expectDatasetError(naming: ["decompresses to more than 20 bytes"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: Data(PythonGzip.images), maxBytes: 20)
        }
        expectDatasetError(naming: ["after the end of the gzip data", "not gzip"]) { () throws(DatasetError) in
            _ = try Gzip.decompress(Data(PythonGzip.images + Array("junk".utf8)))
        }
    }

    // MARK: Bad files

    @Test("a file shorter than its header announces names the bytes expected and found")
    func truncated() {
        expectDatasetError(naming: ["truncated", "[3, 2, 2]", "ubyte", "12 bytes", "only 11"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: threeImages.dropLast())
        }
        expectDatasetError(naming: ["truncated", "3 dimensions"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: threeImages.prefix(9))
        }
        expectDatasetError(naming: ["too short"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: Data([0, 0]))
        }
    }

    @Test("bytes beyond what the header announces are refused")
    func extraBytes() {
        expectDatasetError(naming: ["5 bytes more", "[3, 2, 2]"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: threeImages + Data(count: 5))
        }
    }

    @Test("a file that is not IDX names its first bytes; an NPY file points to format=npy")
    func notIDX() {
        expectDatasetError(naming: ["not an IDX file", "70 30 2c 70"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: Data("p0,p1,label\n1,2,3\n".utf8))
        }
        expectDatasetError(naming: ["format=npy"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: npyFile(descr: "<f4", shape: [1, 1], values: [Float(1)].littleEndianBytes))
        }
    }

    @Test("an unknown type byte and zero dimensions are refused")
    func badHeader() {
        expectDatasetError(naming: ["0x07", "0x08 (ubyte)"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: idxFile(type: 0x07, shape: [1, 1], values: [1]))
        }
        expectDatasetError(naming: ["0 dimensions"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: Data([0, 0, 8, 0]))
        }
        expectDatasetError(naming: ["no samples"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: idxFile(type: 0x08, shape: [0, 28, 28], values: []))
        }
        expectDatasetError(naming: ["samples are empty"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: idxFile(type: 0x08, shape: [2, 0], values: []))
        }
    }

    @Test("a labels file uploaded as images, and images as labels, say which is which")
    func labelsVersusImages() {
        expectDatasetError(naming: ["one dimension", "labels file", "labels_of"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: idxFile(type: 0x08, shape: [3], values: [1, 2, 3]))
        }
        expectDatasetError(naming: ["one value per sample", "[3, 2, 2]"]) { () throws(DatasetError) in
            _ = try IDXParser.readLabels(data: threeImages)
        }
    }

    @Test("NaN and infinite values are refused with their index and row")
    func nonFinite() {
        let nan = [Float(1), 2, 3, 4, 5, .nan].bigEndianBytes
        let error = expectDatasetError(naming: ["index [1, 2]", "NaN"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: idxFile(type: 0x0D, shape: [2, 3], values: nan))
        }
        #expect(error?.row == 2)
        expectDatasetError(naming: ["index [0, 0, 1]", "infinite"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: idxFile(type: 0x0E, shape: [1, 1, 2], values: [Double(1), -.infinity].bigEndianBytes))
        }
        expectDatasetError(naming: ["index [1]", "NaN"]) { () throws(DatasetError) in
            _ = try IDXParser.readLabels(data: idxFile(type: 0x0D, shape: [2], values: [Float(1), .nan].bigEndianBytes))
        }
        expectDatasetError(naming: ["index [0, 1]", "beyond the range of float32"]) { () throws(DatasetError) in
            _ = try IDXParser.readSamples(data: idxFile(type: 0x0E, shape: [1, 2], values: [Double(1), 1e300].bigEndianBytes))
        }
    }

    @Test("many distinct or fractional labels are regression, as for a CSV target; task overrides")
    func labelTasks() throws {
        let fractional = try DatasetTargets(labels: [0.5, 1.5, 2])
        #expect(fractional.task == .regression && fractional.values == [0.5, 1.5, 2] && fractional.classes == nil)
        let many = try DatasetTargets(labels: (0...1000).map(Double.init))
        #expect(many.task == .regression)
        let forced = try DatasetTargets(labels: [1, 2, 1], task: .regression)
        #expect(forced.task == .regression && forced.values == [1, 2, 1])
        let classes = try DatasetTargets(labels: [0.5, 1, 0.5], task: .classification)
        #expect(classes.classes == ["0.5", "1"] && classes.classIndices == [0, 1, 0])
    }
}
