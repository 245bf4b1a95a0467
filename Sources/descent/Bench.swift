import ArgumentParser
import Datasets
import Foundation
import NeuralNetwork
import Tensors
import Training

/// `descent bench mlp|cnn|lstm|all`: training throughput of the real trainer on the workloads of
/// shared/bench/WORKLOADS.md — samples/s, effective GFLOP/s, their share of this machine's sgemm
/// peak (measured here), peak RSS — and, on request, PyTorch's figures for the same workload run
/// right after (`--torch`) and the same job trained through a `descent serve` (`--through-server`).
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training throughput on the benchmark workloads of shared/bench/WORKLOADS.md (mlp, cnn, lstm or all).",
        discussion: """
            Each workload trains one warm-up epoch, then --epochs timed ones, in a process of its own \
            (so that its peak RSS is its own). GFLOP/s counts a training step's floating-point operations \
            per sample: 3 × the forward pass's (forward, weight gradients, data gradients), less the data \
            gradient of the first layer, which is never computed. The peak is the best of three 2048² \
            sgemm calls with the same threads.
            """)

    @Argument(help: "mlp, cnn, lstm or all") var workload: String
    @Option(help: "OpenBLAS threads (default: all cores).") var threads: Int?
    @Option(help: "Timed epochs after one warm-up epoch.") var epochs = 1
    @Option(help: "In-process replicas (the spec's distributed.replicas) sharing each batch; 1 trains one network.")
    var replicas = 1
    @Option(help: "MPI processes (the spec's distributed.processes) for the --through-server job: the server runs it under mpirun.")
    var processes: Int?
    @Flag(help: "One JSON object per workload, for scripts.") var json = false
    @Option(help: "A Python with torch installed: also run shared/bench/torch_anchor.py on each workload and print the ratio.")
    var torch: String?
    @Option(help: "torch_anchor.py (default: ../shared/bench/torch_anchor.py, then shared/bench/torch_anchor.py).")
    var anchor: String?
    @Option(help: "Runs of each workload (and of PyTorch's), alternating; the medians are reported.") var repeats = 3
    @Flag(name: .customLong("through-server"), help: "Also train the workload as a job of a `descent serve` started for it, and compare.")
    var throughServer = false
    @Option(name: .customLong("blas-core"), help: BLASCore.help) var blasCore = BLASCore.inherit
    /// Internal: run exactly one workload in this process and print its JSON (what `all` and the ratios call).
    @Flag(name: .customLong("single"), help: .hidden) var single = false
    /// Internal: measure the sgemm peak in this process and print it. In a process of its own because
    /// OpenBLAS's threads keep spinning for seconds after a call, and would slow the workloads' processes.
    @Flag(name: .customLong("peak-only"), help: .hidden) var peakOnly = false

    /// The workloads of shared/bench/WORKLOADS.md: name, rows, sample shape, layers, batch.
    struct Workload {
        let label: String
        let rows: Int
        let sampleShape: [Int]
        let layers: JSONValue
        let batchSize: Int
        /// FLOPs per sample of the data's gradient through the first layer, which training never computes:
        /// x·Wᵀ's 2·784·512 (mlp), conv1's 2·32·28²·9 (cnn), the LSTM's input projection 2·32·16·512 (lstm).
        let skippedFlops: Int
    }

    static let workloads: [(name: String, workload: Workload)] = [
        ("mlp", Workload(label: "mlp-784-512-256-10-b128", rows: 60_000, sampleShape: [784], layers: [
            ["type": "dense", "units": 512, "activation": "relu"], ["type": "dense", "units": 256, "activation": "relu"],
            ["type": "dense", "units": 10]], batchSize: 128, skippedFlops: 2 * 784 * 512)),
        ("cnn", Workload(label: "cnn-c32-c64-fc128-28x28-b64", rows: 10_000, sampleShape: [1, 28, 28], layers: [
            ["type": "conv2d", "filters": 32, "kernel": 3, "padding": "same", "activation": "relu"], ["type": "max_pool2d", "kernel": 2],
            ["type": "conv2d", "filters": 64, "kernel": 3, "padding": "same", "activation": "relu"], ["type": "max_pool2d", "kernel": 2],
            ["type": "flatten"], ["type": "dense", "units": 128, "activation": "relu"], ["type": "dense", "units": 10]], batchSize: 64,
            skippedFlops: 2 * 32 * 28 * 28 * 9)),
        ("lstm", Workload(label: "lstm-in16-h128-seq32-b64", rows: 8_000, sampleShape: [32, 16], layers: [
            ["type": "lstm", "hidden_size": 128], ["type": "dense", "units": 10]], batchSize: 64, skippedFlops: 2 * 32 * 16 * 512)),
    ]

    func validate() throws {
        guard workload == "all" || Self.workloads.contains(where: { $0.name == workload }) else {
            throw ValidationError("unknown workload \(workload); one of: mlp, cnn, lstm, all")
        }
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        if let threads, threads < 1 { throw ValidationError("--threads must be positive") }
        guard (1...DistributedSpec.maxReplicas).contains(replicas) else {
            throw ValidationError("--replicas must be between 1 and \(DistributedSpec.maxReplicas)")
        }
        if let processes {
            guard throughServer else { throw ValidationError("--processes needs --through-server: MPI jobs run through a server") }
            guard replicas == 1 else { throw ValidationError("--processes and --replicas do not combine (as in a job spec)") }
            guard (1...DistributedSpec.maxProcesses).contains(processes) else {
                throw ValidationError("--processes must be between 1 and \(DistributedSpec.maxProcesses)")
            }
        }
    }

    var threadCount: Int { threads ?? ProcessInfo.processInfo.activeProcessorCount }

    func run() async throws {
        blasCore.apply()
        if peakOnly {
            BLAS.setThreadCount(threadCount)
            let row: JSONValue = ["peak_gflops": JSONValue(Self.sgemmPeak()), "blas_core": JSONValue(BLAS.coreName)]
            print(row.encodedString())
            return
        }
        if single {
            let (_, chosen) = Self.workloads.first { $0.name == workload }!
            print(try Self.measure(chosen, threads: threadCount, epochs: epochs, replicas: replicas).encodedString())
            return
        }
        let peak = try runChild(["bench", workload, "--peak-only", "--threads", "\(threadCount)", "--blas-core", "inherit"])["peak_gflops"]?.number ?? .nan
        let names = workload == "all" ? Self.workloads.map(\.name) : [workload]
        var rows: [JSONValue] = []
        if !json {
            print("sgemm peak: \(String(format: "%.1f", peak)) GFLOP/s (2048², \(threadCount) threads); OpenBLAS kernels: \(BLASCore.description)")
            if replicas > 1 { print("\(replicas) in-process replicas per batch (OpenBLAS single-threaded inside each)") }
        }
        for name in names {
            // Ours and PyTorch's alternate, so that what else the machine does affects both alike.
            var runs: [JSONValue] = [], torchRuns: [(samplesPerSecond: Double, peakRSSMiB: Double)] = []
            for _ in 0..<repeats {
                runs.append(try runChild(["bench", name, "--single", "--epochs", "\(epochs)", "--threads", "\(threadCount)",
                                          "--replicas", "\(replicas)", "--blas-core", "inherit"]))
                if let torch { torchRuns.append(try runTorch(python: torch, workload: name)) }
            }
            let speeds = runs.map { $0["samples_per_s"]?.number ?? 0 }
            let median = Self.median(speeds)
            // The run whose speed is the median, for its other fields.
            var row = runs[speeds.firstIndex(of: median) ?? 0]
            guard case .object(var fields) = row else { continue }
            fields["runs"] = .array(speeds.map { .number($0) })
            let gflops = fields["gflops"]?.number ?? 0
            fields["peak_gflops"] = JSONValue(Self.rounded(peak, 1))
            fields["percent_of_peak"] = JSONValue(Self.rounded(100 * gflops / peak, 1))
            if !torchRuns.isEmpty {
                let theirs = Self.median(torchRuns.map(\.samplesPerSecond))
                fields["torch_samples_per_s"] = JSONValue(theirs)
                fields["torch_runs"] = .array(torchRuns.map { .number($0.samplesPerSecond) })
                fields["torch_peak_rss_mib"] = JSONValue(Self.median(torchRuns.map(\.peakRSSMiB)))
                fields["ratio"] = JSONValue(Self.rounded(median / theirs, 3))
            }
            if throughServer {
                let server = try await ServerThroughput(workload: Self.workloads.first { $0.name == name }!.workload,
                                                        executable: Self.executable, epochs: epochs, threads: threadCount,
                                                        replicas: replicas, processes: processes).measure()
                fields["server_samples_per_s"] = JSONValue(server.server)
                fields["server_library_samples_per_s"] = JSONValue(server.library)
                fields["server_ratio"] = JSONValue(Self.rounded(server.server / server.library, 3))
                fields["server_job_seconds"] = JSONValue(server.jobSeconds)
            }
            row = .object(fields)
            rows.append(row)
            if json { print(row.encodedString()) }
        }
        if !json { printTable(rows) }
    }

    // MARK: One workload, in this process

    /// Trains the workload (one warm-up epoch, then `epochs` timed ones) and reports what it measured.
    static func measure(_ workload: Workload, threads: Int, epochs: Int, replicas: Int = 1) throws -> JSONValue {
        BLAS.setThreadCount(threads)
        let dataset = syntheticDataset(workload)
        let spec = try JobSpec.parse(specJSON(workload, epochs: 1 + epochs, datasetId: "bench", replicas: replicas))
            .resolved(for: DatasetSummary(dataset))
        let trainer = try Trainer(spec: spec, data: PreparedData(spec: spec, dataset: dataset))
        let outcome = try trainer.run()
        let timed = outcome.history.dropFirst()  // the first epoch warms up buffers and caches
        let samples = timed.reduce(0.0) { $0 + $1.samplesPerSecond * $1.seconds }
        let seconds = timed.reduce(0.0) { $0 + $1.seconds }
        let samplesPerSecond = samples / seconds
        // Forward, weight gradients and data gradients: 3 × the forward pass, less the data gradient of the first layer.
        let flopsPerSample = 3 * (spec.size?.flopsPerSample ?? 0) - workload.skippedFlops
        return [
            "workload": JSONValue(workload.label), "samples_per_s": JSONValue(rounded(samplesPerSecond, 1)),
            "gflops": JSONValue(rounded(samplesPerSecond * Double(flopsPerSample) / 1e9, 1)),
            "training_flops_per_sample": JSONValue(flopsPerSample),
            "peak_rss_mib": JSONValue(peakRSSMiB()), "seconds": JSONValue(rounded(seconds, 3)),
            "final_loss": JSONValue(outcome.history.last?.trainLoss ?? .nan), "threads": JSONValue(BLAS.threadCount), "blas_core": JSONValue(BLAS.coreName),
            "replicas": JSONValue(replicas),
        ]
    }

    /// Standard-normal features and uniform labels over 10 classes, from our seeded generator, like the anchor's.
    static func syntheticDataset(_ workload: Workload) -> TabularDataset {
        let features = workload.sampleShape.reduce(1, *)
        var generator = SeededGenerator(seed: 0, purpose: "bench")
        var values = [Float](repeating: 0, count: workload.rows * features)
        for i in values.indices { values[i] = generator.normal() }
        let labels = (0..<workload.rows).map { _ in Int32(generator.next() % 10) }
        return TabularDataset(
            features: values, rows: workload.rows, featureCount: features, featureNames: (0..<features).map { "x\($0)" },
            sampleShape: workload.sampleShape, task: .classification, classes: (0..<10).map(String.init), classIndices: labels,
            targetValues: [], targetCount: 10)
    }

    /// The workload as a job spec: SGD with momentum 0.9, no validation split, no standardization (as the anchor);
    /// with `replicas` > 1, trained on that many in-process replicas, with `processes` on that many MPI ranks (`distributed`).
    static func specJSON(_ workload: Workload, epochs: Int, datasetId: String, replicas: Int = 1, processes: Int? = nil) -> JSONValue {
        var fields: [String: JSONValue] = [
            "name": JSONValue("bench-\(workload.label)"),
            "dataset": ["id": JSONValue(datasetId)], "validation": ["split": 0], "preprocessing": ["standardize": false],
            "model": ["input_shape": JSONValue(workload.sampleShape), "layers": workload.layers],
            "optimizer": ["type": "sgd", "lr": 0.01, "momentum": 0.9],
            "training": ["epochs": JSONValue(epochs), "batch_size": JSONValue(workload.batchSize), "seed": 0],
        ]
        if replicas > 1 { fields["distributed"] = ["replicas": JSONValue(replicas)] }
        if let processes { fields["distributed"] = ["processes": JSONValue(processes)] }
        return .object(fields)
    }

    /// The process's peak resident set (VmHWM), in MiB.
    static func peakRSSMiB() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kib = Double(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return 0 }
        return rounded(kib / 1024, 1)
    }

    /// The best of three 2048² sgemm calls, in GFLOP/s, with the current thread count.
    static func sgemmPeak(size n: Int = 2048) -> Double {
        let a = Tensor(shape: [n, n]), b = Tensor(shape: [n, n]), c = Tensor(shape: [n, n])
        var generator = SeededGenerator(seed: 1, purpose: "sgemm peak")
        for i in 0..<(n * n) { a[i] = generator.uniform(-1, 1); b[i] = generator.uniform(-1, 1) }
        var best = Double.infinity
        for attempt in 0..<4 {
            let start = DispatchTime.now().uptimeNanoseconds
            BLAS.gemm(.none, .none, m: n, n: n, k: n, a: a.pointer, lda: n, b: b.pointer, ldb: n, c: c.pointer, ldc: n)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if attempt > 0 { best = min(best, seconds) }  // the first call packs into cold buffers
        }
        return 2 * pow(Double(n), 3) / best / 1e9
    }

    /// The middle value (of an even count, the lower middle one: a value that was measured).
    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[(sorted.count - 1) / 2]
    }

    static func rounded(_ value: Double, _ digits: Int) -> Double {
        let scale = pow(10, Double(digits))
        return (value * scale).rounded() / scale
    }

    // MARK: Other processes

    static var executable: URL { URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath() }

    /// Runs this executable with `arguments` and returns the JSON object of its last output line.
    func runChild(_ arguments: [String]) throws -> JSONValue {
        let output = try Self.run(Self.executable, arguments)
        guard let line = output.split(separator: "\n").last, let value = try? JSONValue.parse(Data(line.utf8)) else {
            throw ValidationError("the benchmark process printed no result:\n\(output)")
        }
        return value
    }

    /// torch_anchor.py on one workload, in a Python that also reports its own peak RSS.
    func runTorch(python: String, workload: String) throws -> (samplesPerSecond: Double, peakRSSMiB: Double) {
        let candidates = [anchor, "../shared/bench/torch_anchor.py", "shared/bench/torch_anchor.py"].compactMap { $0 }
        guard let script = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw ValidationError("torch_anchor.py not found (tried \(candidates.joined(separator: ", "))); give --anchor PATH")
        }
        let wrapper = """
            import json, resource, runpy, sys, warnings
            warnings.filterwarnings("ignore")
            sys.argv = [sys.argv[1], sys.argv[2], "--threads", sys.argv[3]]
            runpy.run_path(sys.argv[0], run_name="__main__")
            print(json.dumps({"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
            """
        let output = try Self.run(URL(fileURLWithPath: python), ["-c", wrapper, script, workload, "\(threadCount)"])
        let objects = output.split(separator: "\n").compactMap { try? JSONValue.parse(Data($0.utf8)) }
        guard let result = objects.first(where: { $0["samples_per_s"] != nil }), let speed = result["samples_per_s"]?.number,
              let rss = objects.last?["peak_rss_mib"]?.number
        else { throw ValidationError("torch_anchor.py printed no result:\n\(output)") }
        return (speed, rss)
    }

    static func run(_ executable: URL, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw ValidationError("\(executable.lastPathComponent) \(arguments.prefix(3).joined(separator: " ")) failed (\(process.terminationStatus)):\n\(output)")
        }
        return output
    }

    // MARK: Output

    func printTable(_ rows: [JSONValue]) {
        func cell(_ value: JSONValue?, _ format: String = "%.0f") -> String {
            guard let number = value?.number else { return "—" }
            return String(format: format, number)
        }
        var header = ["workload", "samples/s", "GFLOP/s", "% peak", "peak RSS MiB"]
        if torch != nil { header += ["torch samples/s", "ratio", "torch RSS MiB"] }
        if throughServer { header += ["server samples/s", "server/library"] }
        var lines = [header]
        for row in rows {
            var line = [row["workload"]?.string ?? "?", cell(row["samples_per_s"]), cell(row["gflops"], "%.1f"),
                        cell(row["percent_of_peak"], "%.1f"), cell(row["peak_rss_mib"])]
            if torch != nil { line += [cell(row["torch_samples_per_s"]), cell(row["ratio"], "%.2f×"), cell(row["torch_peak_rss_mib"])] }
            if throughServer { line += [cell(row["server_samples_per_s"]), cell(row["server_ratio"], "%.3f")] }
            lines.append(line)
        }
        let widths = header.indices.map { column in lines.map { $0[column].count }.max() ?? 0 }
        for line in lines {
            print(line.enumerated().map { column, text in
                column == 0 ? text.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                            : String(repeating: " ", count: widths[column] - text.count) + text
            }.joined(separator: "  "))
        }
    }
}
