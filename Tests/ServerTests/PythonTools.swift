import Foundation

/// A Python virtual environment of the tools some tests check the server with (Prometheus' own
/// text-format parser, schemathesis), made once under `.build/python-tools` with the PyPI packages
/// they need; `DESCENT_PYTHON_TOOLS` points at another one.
enum PythonTools {
    static let lock = NSLock()

    static var folder: URL {
        if let path = ProcessInfo.processInfo.environment["DESCENT_PYTHON_TOOLS"], !path.isEmpty { return URL(fileURLWithPath: path) }
        return RepositoryFiles.packageRoot.appendingPathComponent(".build/python-tools")
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The environment's `python`, with `packages` (pip requirement strings) installed.
    static func python(with packages: [String]) async throws -> URL {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try installedPython(with: packages) }) }
        }
    }

    private static func installedPython(with packages: [String]) throws -> URL {
        lock.lock()
        defer { lock.unlock() }
        let python = folder.appendingPathComponent("bin/python")
        if !FileManager.default.fileExists(atPath: python.path) {
            try run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-m", "venv", folder.path])
        }
        let marker = folder.appendingPathComponent("installed-" + packages.joined(separator: "+").replacingOccurrences(of: "/", with: "_"))
        if !FileManager.default.fileExists(atPath: marker.path) {
            try run(python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check"] + packages)
            _ = FileManager.default.createFile(atPath: marker.path, contents: nil)
        }
        return python
    }

    /// `run` on a Dispatch thread: waiting for a process must not hold one of the few cooperative
    /// threads, which the in-process servers the program talks to need to answer it.
    static func runDetached(_ executable: URL, _ arguments: [String], input: Data? = nil, in directory: URL? = nil) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try run(executable, arguments, input: input, in: directory) })
            }
        }
    }

    /// Runs a program to its end; returns its standard output. Throws with its output if it fails.
    /// Standard error goes to a file, not a pipe: a chatty program (Chromium) would otherwise fill
    /// the pipe and block while this side waits for its standard output.
    @discardableResult
    static func run(_ executable: URL, _ arguments: [String], input: Data? = nil, in directory: URL? = nil) throws -> String {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        let output = Pipe(), stdin = Pipe()
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("descent-run-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorFile) }
        let errors = try FileHandle(forWritingTo: errorFile)
        defer { try? errors.close() }
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(input) }
        try? stdin.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let err = (try? Data(contentsOf: errorFile)) ?? Data()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(executable.lastPathComponent) \(arguments.joined(separator: " ")) exited \(process.terminationStatus): "
                          + String(decoding: err + out, as: UTF8.self).suffix(2000))
        }
        return String(decoding: out, as: UTF8.self)
    }
}
