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
    static func python(with packages: [String]) throws -> URL {
        lock.lock()
        defer { lock.unlock() }
        let python = folder.appendingPathComponent("bin/python")
        if !FileManager.default.fileExists(atPath: python.path) {
            try run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-m", "venv", folder.path])
        }
        let marker = folder.appendingPathComponent("installed-" + packages.joined(separator: "+").replacingOccurrences(of: "/", with: "_"))
        if !FileManager.default.fileExists(atPath: marker.path) {
            try run(python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check"] + packages)
            FileManager.default.createFile(atPath: marker.path, contents: nil)
        }
        return python
    }

    /// Runs a program to its end; returns its standard output. Throws with its output if it fails.
    @discardableResult
    static func run(_ executable: URL, _ arguments: [String], input: Data? = nil) throws -> String {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let output = Pipe(), errors = Pipe(), stdin = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(input) }
        try? stdin.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(executable.lastPathComponent) \(arguments.joined(separator: " ")) exited \(process.terminationStatus): "
                          + String(decoding: err + out, as: UTF8.self).suffix(2000))
        }
        return String(decoding: out, as: UTF8.self)
    }
}
