import Datasets
import Foundation
import NeuralNetwork
import Training

/// What the server parses from a request, one target each: bytes in, a value or a thrown error out.
/// Any input that traps, leaks or hangs instead is a bug (`make fuzz`, CI's short runs).
enum FuzzTarget: String, CaseIterable {
    case csv, npy, idx, gzip, json, spec

    /// Uploads decompress to at most this (the server's `--max-upload-bytes` plays this part).
    static let maxBytes = 1 << 24

    /// The datasets a fuzzed spec is checked against: a table, images and sequences, of both tasks.
    static let datasets = [
        DatasetSummary(rows: 150, sampleShape: [4], task: .classification, classCount: 3, targetCount: 3),
        DatasetSummary(rows: 1797, sampleShape: [1, 8, 8], task: .classification, classCount: 10, targetCount: 10),
        DatasetSummary(rows: 200, sampleShape: [6], task: .regression, classCount: nil, targetCount: 2),
        DatasetSummary(rows: 64, sampleShape: [12, 3], task: .classification, classCount: 2, targetCount: 2),
    ]

    func run(_ data: Data) {
        switch self {
        case .csv:
            _ = try? CSVParser.parse(data: data)
            _ = try? CSVParser.parse(data: data, target: "y", task: .regression)
        case .npy:
            _ = try? NPYParser.readSamples(data: data, maxBytes: Self.maxBytes)
            _ = try? NPYParser.readLabels(data: data, maxBytes: Self.maxBytes)
            _ = try? NPYParser.readTable(data: data, maxBytes: Self.maxBytes)
        case .idx:
            _ = try? IDXParser.readSamples(data: data, maxBytes: Self.maxBytes)
            _ = try? IDXParser.readLabels(data: data, maxBytes: Self.maxBytes)
        case .gzip:
            _ = try? Gzip.decompressIfNeeded(data, maxBytes: Self.maxBytes)
        case .json:
            _ = try? JSONValue.parse(data)
        case .spec:
            // /v1/jobs/validate's path without the store: parse, then fit to each kind of data (shapes, limits).
            guard let spec = try? JobSpec.parse(data) else { return }
            for dataset in Self.datasets {
                if let resolved = try? spec.resolved(for: dataset) { _ = resolved.size }
            }
        }
    }
}

#if FUZZING
/// Chosen once per fuzzing process: `DESCENT_FUZZ_TARGET=csv` and so on.
nonisolated(unsafe) let fuzzTarget = FuzzTarget(rawValue: ProcessInfo.processInfo.environment["DESCENT_FUZZ_TARGET"] ?? "")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard let fuzzTarget else {
        fatalError("set DESCENT_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    fuzzTarget.run(Data(bytes: start, count: count))
    return 0
}

/// libFuzzer's driver, run from the entry point SwiftPM gives an executable (`<module>_main`).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                     _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

@_cdecl("descent_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments, fuzzOneInput)
}
#else
/// Without libFuzzer: `descent-fuzz TARGET PATH…` runs a target on each file (or each file of each folder),
/// so the committed corpora and every input a fuzzer once crashed on are replayed by the tests.
@main
struct Replay {
    static func main() throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name), arguments.count > 1 else {
            FileHandle.standardError.write(Data("usage: descent-fuzz \(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")) FILE|FOLDER…\n".utf8))
            exit(64)
        }
        var count = 0
        for path in arguments.dropFirst() {
            var isFolder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { continue }
            let files = isFolder.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { "\(path)/\($0)" } : [path]
            for file in files {
                target.run(try Data(contentsOf: URL(fileURLWithPath: file)))
                count += 1
            }
        }
        print("\(name): \(count) inputs, none crashed")
    }
}
#endif
