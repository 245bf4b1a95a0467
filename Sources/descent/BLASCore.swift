import ArgumentParser
import Foundation
import Tensors

/// Which OpenBLAS kernels `serve` and `bench` run (`--blas-core`).
///
/// OpenBLAS picks its kernels once, as it loads, from `OPENBLAS_CORETYPE` or else from the CPU's
/// features. By default (`inherit`) the environment decides: some machines set `OPENBLAS_CORETYPE`
/// (and `OPENBLAS_L2_SIZE`) because older OpenBLAS builds miscompute on their processors. `auto`
/// drops both and lets OpenBLAS detect the CPU, a name (`Haswell`, `SkylakeX`, `Cooperlake`, …) pins
/// those kernels; either way the process starts itself again, since the choice is made at load time.
enum BLASCore: ExpressibleByArgument, Equatable {
    case auto, inherit, named(String)

    static let variable = "OPENBLAS_CORETYPE"
    /// The cache size OpenBLAS sizes its blocks by; set beside `OPENBLAS_CORETYPE` for the named kernels.
    static let cacheVariable = "OPENBLAS_L2_SIZE"
    /// Set on the re-executed process: the `OPENBLAS_CORETYPE` it was started with, for the log line.
    static let replacedVariable = "DESCENT_REPLACED_OPENBLAS_CORETYPE"

    init?(argument: String) {
        switch argument {
        case "auto": self = .auto
        case "inherit": self = .inherit
        case let name where !name.isEmpty && name.allSatisfy({ $0.isLetter || $0.isNumber }): self = .named(name)
        default: return nil
        }
    }

    var argument: String {
        switch self {
        case .auto: "auto"
        case .inherit: "inherit"
        case let .named(name): name
        }
    }

    /// The environment change this choice needs, or nil when the loaded kernels already follow it.
    private var wantedVariable: String?? {
        let current = ProcessInfo.processInfo.environment[Self.variable]
        switch self {
        case .inherit: return nil
        case .auto: return current == nil ? nil : .some(nil)
        case let .named(name): return current == name ? nil : .some(name)
        }
    }

    /// Re-executes this process with the environment the choice needs; returns only when no change
    /// is needed (or the re-execution failed, which leaves the inherited kernels and says so).
    func apply() {
        guard let wanted = wantedVariable else { return }
        if let current = ProcessInfo.processInfo.environment[Self.variable] {
            setenv(Self.replacedVariable, current, 1)
        }
        if let wanted {
            setenv(Self.variable, wanted, 1)
        } else {
            unsetenv(Self.variable)
            unsetenv(Self.cacheVariable)
        }
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // Only reached when execv failed.
        FileHandle.standardError.write(Data("descent: could not restart with other OpenBLAS kernels (errno \(errno)); keeping \(BLAS.coreName)\n".utf8))
    }

    /// "Cooperlake", with what it replaced when `auto` or a name overrode the environment.
    /// A name OpenBLAS does not know makes it detect the CPU instead, silently; this says so.
    static var description: String {
        let core = BLAS.coreName, environment = ProcessInfo.processInfo.environment
        var notes: [String] = []
        if let named = environment[variable], named.lowercased() != core.lowercased() {
            notes.append("OpenBLAS has no kernels named \(named) and detected these")
        }
        if let replaced = environment[replacedVariable] { notes.append("instead of the environment's \(variable)=\(replaced)") }
        return notes.isEmpty ? core : "\(core) (\(notes.joined(separator: "; ")))"
    }

    static let help = ArgumentHelp(
        "OpenBLAS kernels: inherit (as OPENBLAS_CORETYPE says, else detected), auto (detected, ignoring OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE), or a name such as Haswell or SkylakeX.",
        valueName: "auto|inherit|name")
}
