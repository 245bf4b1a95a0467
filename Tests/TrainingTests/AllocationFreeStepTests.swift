import AllocationCounter
import Datasets
import Foundation
import Testing
@testable import Training

/// A training step allocates nothing: every buffer a step needs is made by the first batches and
/// reused. Measured as what it implies: an epoch of 3× as many batches makes exactly as many heap
/// allocations (counted on the training thread) as the shorter one, so none of them is per step.
@Suite("Allocation-free training steps", .enabled(if: allocation_counter_is_active() != 0, "a sanitizer build counts no allocations"))
struct AllocationFreeStepTests {
    /// Models and optimizers that cover the layer families and the optimizer kinds; `rows` is
    /// one epoch's training rows of the shorter run (a multiple of the batch size, 16).
    static let cases: [(name: String, dataset: String, model: String, optimizer: String, extra: String)] = [
        ("mlp, sgd with nesterov momentum, dropout, L2, max-norm, clipping",
         #"{"builtin": "moons", "samples": 64, "seed": 1}"#,
         #"{"layers": [{"type": "dense", "units": 32, "activation": "relu"}, {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 2}]}"#,
         #"{"type": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": true}"#, ""),
        ("mlp with batch norm, adam",
         #"{"builtin": "spirals", "samples": 64, "seed": 1}"#,
         #"{"layers": [{"type": "dense", "units": 32}, {"type": "batch_norm"}, {"type": "activation", "name": "gelu"}, {"type": "dense", "units": 3}]}"#,
         #"{"type": "adam", "lr": 0.01}"#, ""),
        ("cnn with pooling, adamw",
         #"{"builtin": "shapes_images", "samples": 64, "classes": 4, "seed": 1}"#,
         #"{"layers": [{"type": "conv2d", "filters": 8, "kernel": 3, "padding": "same", "activation": "relu"}, {"type": "max_pool2d", "kernel": 2}, {"type": "conv2d", "filters": 8, "kernel": 3, "groups": 2, "activation": "relu"}, {"type": "flatten"}, {"type": "dense", "units": 4}]}"#,
         #"{"type": "adamw", "lr": 0.01, "weight_decay": 0.01}"#, ""),
        ("lstm, rmsprop",
         #"{"builtin": "sine_sequences", "samples": 64, "classes": 3, "seed": 1}"#,
         #"{"layers": [{"type": "lstm", "hidden_size": 16}, {"type": "dense", "units": 3}]}"#,
         #"{"type": "rmsprop", "lr": 0.01}"#, ""),
        ("gru, nadam",
         #"{"builtin": "sine_sequences", "samples": 64, "classes": 3, "seed": 1}"#,
         #"{"layers": [{"type": "gru", "hidden_size": 16}, {"type": "dense", "units": 3}]}"#,
         #"{"type": "nadam", "lr": 0.01}"#, ""),
        ("mlp with layer norm, adadelta",
         #"{"builtin": "circles", "samples": 64, "seed": 1}"#,
         #"{"layers": [{"type": "dense", "units": 16}, {"type": "layer_norm"}, {"type": "activation", "name": "sigmoid"}, {"type": "dense", "units": 2}]}"#,
         #"{"type": "adadelta", "lr": 1.0}"#, ""),
        ("mlp on 2 in-process replicas, adagrad (the calling thread's share)",
         #"{"builtin": "moons", "samples": 64, "seed": 1}"#,
         #"{"layers": [{"type": "dense", "units": 32, "activation": "tanh"}, {"type": "dense", "units": 2}]}"#,
         #"{"type": "adagrad", "lr": 0.05}"#, #", "distributed": {"replicas": 2}"#),
    ]

    /// Heap allocations made by one epoch of `Trainer.run` on `rows` training rows (the trainer is
    /// built before counting starts).
    func allocations(_ index: Int, rows: Int) throws -> Int {
        let (_, datasetText, model, optimizer, extra) = Self.cases[index]
        let text = """
        {"dataset": \(datasetText.replacingOccurrences(of: "\"samples\": 64", with: "\"samples\": \(rows)")),
         "validation": {"split": 0}, "test": {"split": 0}, "model": \(model), "optimizer": \(optimizer),
         "regularization": {"l2": 0.0001, "max_norm": 3},
         "training": {"epochs": 1, "batch_size": 16, "seed": 1, "gradient_clip_norm": 5}\(extra)}
        """
        let spec = try JobSpec.parse(json(text))
        let (resolved, data) = try prepare(spec, on: builtinData(of: spec))
        let trainer = try Trainer(spec: resolved, data: data)
        allocation_counter_start()
        _ = try trainer.run()
        return allocation_counter_stop()
    }

    /// Allocations OpenBLAS's own code made in the last counted run (not the engine's to avoid).
    var blasAllocations: Int { allocation_counter_blas_allocations() }

    @Test("an epoch of three times as many batches allocates no more than a short one", arguments: 0..<cases.count)
    func stepsAllocateNothing(index: Int) throws {
        _ = try allocations(index, rows: 64)  // the process's first use of these types allocates their metadata
        let short = try allocations(index, rows: 64), long = try allocations(index, rows: 192)
        print("[figures] \(Self.cases[index].name): \(short) allocations in an epoch of 4 batches, \(long) in one of 12 (and \(blasAllocations) inside OpenBLAS)")
        #expect(long == short, "\(Self.cases[index].name): \(long - short) allocations over 8 more batches")
    }
}
