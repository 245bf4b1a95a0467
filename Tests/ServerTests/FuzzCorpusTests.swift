import Foundation
import Testing

/// The fuzz targets' committed corpora, the inputs that once crashed the server among them, replayed by
/// the plain `descent-fuzz` build (`make fuzz` explores from them with libFuzzer).
@Suite("Fuzz corpora replay without a crash")
struct FuzzCorpusTests {
    static let targets = ["csv", "npy", "idx", "gzip", "json", "spec"]

    @Test("Every input of every fuzz target's corpus ends in a value or an error", arguments: targets)
    func corpusReplays(target: String) throws {
        let executable = ServerProcess.executable.deletingLastPathComponent().appendingPathComponent("descent-fuzz")
        let corpus = RepositoryFiles.packageRoot.appendingPathComponent("Fuzz/corpus/\(target)")
        let files = try FileManager.default.contentsOfDirectory(atPath: corpus.path)
        #expect(files.count >= 3, "a seed corpus of a few inputs at least")
        let process = Process()
        process.executableURL = executable
        process.arguments = [target, corpus.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(target): \(output.suffix(2000))")
        #expect(output.contains("\(target): \(files.count) inputs, none crashed"), "\(output.suffix(500))")
    }
}
