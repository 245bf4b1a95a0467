import Foundation
import NeuralNetwork
import Testing

/// `--blas-core` restarts `descent` with the environment that makes OpenBLAS load the chosen kernels.
/// Checked through the bench's hidden `--peak-only` run, which reports the kernels it ran.
@Suite("Choosing OpenBLAS's kernels")
struct BLASCoreTests {
    /// Runs `descent bench mlp --peak-only --threads 1` with `OPENBLAS_CORETYPE=Prescott` in its
    /// environment and returns the kernels it reports.
    private func kernels(_ choice: String) throws -> String {
        let process = Process()
        process.executableURL = ServerProcess.executable
        process.arguments = ["bench", "mlp", "--peak-only", "--threads", "1", "--blas-core", choice]
        var environment = ProcessInfo.processInfo.environment
        environment["OPENBLAS_CORETYPE"] = "Prescott"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let lastLine = String(decoding: output, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        return try #require(JSONValue(lastLine)["blas_core"]?.string, "no blas_core in \(lastLine)")
    }

    @Test("by default the kernels are the ones OPENBLAS_CORETYPE names")
    func inheritKeepsTheEnvironment() throws {
        #expect(try kernels("inherit") == "Prescott")
    }

    @Test("a named core replaces the one the environment names")
    func aNamedCoreIsLoaded() throws {
        #expect(try kernels("Haswell") == "Haswell")
    }

    /// On a CPU without AVX2 OpenBLAS could itself detect Prescott-class kernels, so the test needs one.
    static let cpuHasAVX2 = ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").contains(" avx2")

    @Test("auto ignores OPENBLAS_CORETYPE and loads the kernels OpenBLAS detects for this CPU", .enabled(if: cpuHasAVX2))
    func autoDetects() throws {
        #expect(try kernels("auto") != "Prescott")
    }
}
