// swift-tools-version:6.2
import Foundation
import PackageDescription

// The engine (Tensors … Training) builds with optimizations even in debug builds: its kernels
// run in tight loops, and the tests train real models.
// -fno-math-errno lets sqrtf and friends vectorize instead of going through errno-setting calls.
// The engine is compiled for the CPU of the machine that builds it (`make serve` and `make test` build
// where they run): its elementwise loops then use AVX2/AVX-512, 25–35 % more samples/s on the
// benchmarks than the x86-64 baseline (SSE2). DESCENT_TARGET_CPU=x86-64 (or haswell, znver4, …)
// builds a binary for other machines.
let targetCPU = ProcessInfo.processInfo.environment["DESCENT_TARGET_CPU"] ?? "native"
let engineSettings: [SwiftSetting] = [
    .unsafeFlags(["-O"], .when(configuration: .debug)),
    .unsafeFlags(["-Xcc", "-fno-math-errno"]),
    .unsafeFlags(["-target-cpu", targetCPU]),
]

let package = Package(
    name: "descent",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "descent", targets: ["descent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        // SHA-256 of access tokens (the store keeps hashes only).
        .package(url: "https://github.com/apple/swift-crypto.git", "3.0.0"..<"5.0.0"),
        // ONNX export: the runtime only; the message types in Sources/ONNX/onnx.pb.swift are generated once
        // (scripts/generate-onnx-proto.sh) and committed, so building needs neither protoc nor the plugin.
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        // The job store of a fleet of servers (`--database postgres://…`); SQLite stays the default.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // `descent serve --tls-cert --tls-key` (Hummingbird's TLS builder) and PostgreSQL's sslmode; already in the graph through postgres-nio.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // NIOThreadPool: the server's CPU-heavy request work runs on threads of its own (see `offCooperativePool`).
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        // The system zlib, for gzip-compressed dataset uploads (Datasets only).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // Open MPI (Debian's libopenmpi-dev; pkg-config names its include and library folders), for the
        // ranks of a `distributed.processes` job. Only MPIShim includes mpi.h; only `descent` links it.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        // The MPI calls as plain C functions (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM are macros Swift cannot import).
        .target(name: "MPIShim", dependencies: ["CMPI"]),
        // Training's `ProcessCollective` over MPI: the engine stays testable and buildable without MPI.
        .target(name: "MPICollective", dependencies: ["MPIShim", "Training"]),
        .target(name: "Tensors", dependencies: ["COpenBLAS"], swiftSettings: engineSettings),
        .target(name: "Datasets", dependencies: ["Tensors", "CZlib"], swiftSettings: engineSettings),
        .target(name: "NeuralNetwork", dependencies: ["Tensors"], swiftSettings: engineSettings),
        .target(name: "Optimizers", dependencies: ["Tensors"], swiftSettings: engineSettings),
        // Pruning masks, channel removal and quantization: computing them, separate from the trainer that applies them.
        .target(name: "Compression", dependencies: ["Tensors", "NeuralNetwork"], swiftSettings: engineSettings),
        .target(
            name: "Training",
            dependencies: ["Tensors", "Datasets", "NeuralNetwork", "Optimizers", "Compression"],
            swiftSettings: engineSettings
        ),
        // A trained model (or a GAN's generator) as an ONNX graph: above Training, below Server.
        .target(
            name: "ONNX",
            dependencies: [
                "Training", "NeuralNetwork", "Compression", "Datasets", "Tensors",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ]
        ),
        .target(
            name: "JobStore",
            dependencies: [
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            resources: [.copy("Migrations"), .copy("PostgresMigrations")]
        ),
        .target(
            name: "Workers",
            dependencies: [
                "JobStore", "Training", "Datasets", "NeuralNetwork", "Tensors",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "Server",
            dependencies: [
                "JobStore", "Workers", "Training", "Datasets", "NeuralNetwork", "ONNX",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            resources: [.copy("Public")]
        ),
        .executableTarget(
            name: "descent",
            dependencies: [
                "Server", "JobStore", "Workers", "Training", "NeuralNetwork", "Datasets", "Tensors", "Optimizers", "MPICollective",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // libFuzzer targets for what the server parses (`make fuzz` builds it with -sanitize=fuzzer -DFUZZING);
        // built plainly, it replays the committed corpora (the tests run it).
        .executableTarget(name: "descent-fuzz", dependencies: ["Datasets", "NeuralNetwork", "Training"], path: "Fuzz/Sources"),
        // Reads shared/reference/ (or DESCENT_REFERENCE_DIR) for the engine's tests.
        .target(name: "ReferenceFixtures", path: "Tests/ReferenceFixtures"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "Tensors"]),
        .testTarget(name: "NeuralNetworkTests", dependencies: ["NeuralNetwork", "Tensors", "ReferenceFixtures"]),
        .testTarget(name: "OptimizersTests", dependencies: ["Optimizers", "Tensors", "ReferenceFixtures"]),
        .testTarget(name: "CompressionTests", dependencies: ["Compression", "NeuralNetwork", "Tensors", "ReferenceFixtures"]),
        // Counts the test thread's heap allocations (its malloc family interposes libc's in the test process).
        .target(name: "AllocationCounter", path: "Tests/AllocationCounter"),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Datasets", "NeuralNetwork", "Tensors", "AllocationCounter"]),
        // A throwaway PostgreSQL cluster for the tests of the fleet's store and of the fleet itself.
        .target(name: "PostgresTestSupport", dependencies: ["Server"], path: "Tests/PostgresTestSupport"),
        .testTarget(name: "JobStoreTests", dependencies: ["JobStore", "PostgresTestSupport"]),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server", "JobStore", "Workers", "NeuralNetwork", "Tensors", "Training", "ONNX", "Compression", "Datasets", "PostgresTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            // Run by the browser tests with python3, not compiled.
            exclude: ["Browser/watch_job_row.py"]
        ),
    ]
)
