import Compression
import Datasets
import Foundation
import NeuralNetwork
import Testing
@testable import Training

/// `compression` and `distillation` of the job spec (API.md § Jobs): what parsing fills in, what it
/// refuses with which path and message, what `resolved(for:)` checks against the data, and how many
/// epochs the pipeline adds to the job's progress.
@Suite("Compression and distillation specs")
struct CompressionSpecTests {
    /// A minimal spec with `compression` set to `steps` (JSON array text) and `extra` top-level members.
    static func spec(compression steps: String, _ extra: String = "") -> String {
        minimalSpec(#", "compression": "# + steps + extra)
    }

    /// The parsed compression steps of `steps`, failing the test when the spec does not parse.
    static func steps(_ steps: String, _ extra: String = "", sourceLocation: SourceLocation = #_sourceLocation) throws -> [CompressionStep] {
        let text = spec(compression: steps, extra)
        let issues = problems(text)
        #expect(issues.isEmpty, "\(text) → \(issues)", sourceLocation: sourceLocation)
        return try JobSpec.parse(json(text)).compression
    }

    // MARK: Defaults filled in

    @Test("A prune step with only an amount gets magnitude, unstructured, local, no schedule and no fine-tuning")
    func pruneDefaults() throws {
        let steps = try Self.steps(#"[{"type": "prune", "amount": 0.5}]"#)
        #expect(steps == [.prune(PruneSpec())])
        #expect(steps.first?.typeName == "prune")
        #expect(steps.map(\.jsonValue) == [json("""
            {"type": "prune", "method": "magnitude", "structure": "unstructured", "scope": "local", "amount": 0.5,
             "schedule": null, "fine_tune_epochs": 0}
            """)])
    }

    @Test("A quantize step with no options is 8-bit symmetric per-tensor post-training quantization over 32 calibration batches")
    func quantizeDefaults() throws {
        let steps = try Self.steps(#"[{"type": "quantize"}]"#)
        #expect(steps == [.quantize(QuantizeSpec())])
        #expect(steps.map(\.jsonValue) == [json("""
            {"type": "quantize", "bits": 8, "scheme": "symmetric", "granularity": "per_tensor", "mode": "ptq",
             "calibration_batches": 32}
            """)])
    }

    @Test("Quantization-aware training echoes its qat_epochs, 3 by default")
    func qatDefaults() throws {
        let steps = try Self.steps(#"[{"type": "quantize", "mode": "qat", "bits": 4, "scheme": "affine", "granularity": "per_channel"}]"#)
        guard case .quantize(let quantize)? = steps.first else { Issue.record("not a quantize step: \(steps)"); return }
        #expect(quantize.mode == .qat)
        #expect(quantize.qatEpochs == 3)
        #expect(quantize.bits == 4)
        #expect(quantize.scheme == .affine)
        #expect(quantize.granularity == .perChannel)
        #expect(steps.first?.jsonValue == json("""
            {"type": "quantize", "bits": 4, "scheme": "affine", "granularity": "per_channel", "mode": "qat", "qat_epochs": 3,
             "calibration_batches": 32}
            """))
    }

    @Test("A sensitivity analysis without sparsities analyses 0, 0.1, … 0.9")
    func sensitivityDefaults() throws {
        let steps = try Self.steps(#"[{"type": "sensitivity_analysis"}]"#)
        let tenths = (0...9).map { Double($0) / 10 }
        #expect(steps == [.sensitivityAnalysis(sparsities: tenths)])
        #expect(steps.first?.typeName == "sensitivity_analysis")
        #expect(steps.first?.jsonValue == json(#"{"type": "sensitivity_analysis", "sparsities": [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]}"#))
        let chosen = try Self.steps(#"[{"type": "sensitivity_analysis", "sparsities": [0, 0.25, 0.5]}]"#)
        #expect(chosen == [.sensitivityAnalysis(sparsities: [0, 0.25, 0.5])])
    }

    @Test("A gradual schedule defaults to a cubic polynomial from fine-tuning epoch 0 to the last, pruning every epoch from sparsity 0")
    func scheduleDefaults() throws {
        let steps = try Self.steps(#"[{"type": "prune", "amount": 0.8, "fine_tune_epochs": 4, "schedule": {}}]"#)
        guard case .prune(let prune)? = steps.first else { Issue.record("not a prune step: \(steps)"); return }
        #expect(prune.schedule == PruneSpec.Schedule(beginEpoch: 0, endEpoch: 4, frequency: 1, initialSparsity: 0, power: 3))
        #expect(prune.fineTuneEpochs == 4)
        #expect(steps.first?.jsonValue["schedule"] == json("""
            {"type": "polynomial", "begin_epoch": 0, "end_epoch": 4, "frequency": 1, "initial_sparsity": 0, "power": 3}
            """))
    }

    @Test("Amount auto keeps a max_accuracy_drop of 0.01 by default and echoes it")
    func automaticAmountDefaults() throws {
        let steps = try Self.steps(#"[{"type": "prune", "amount": "auto"}]"#)
        guard case .prune(let prune)? = steps.first else { Issue.record("not a prune step: \(steps)"); return }
        #expect(prune.amount == .auto(maxAccuracyDrop: 0.01))
        #expect(steps.first?.jsonValue["amount"] == "auto")
        #expect(steps.first?.jsonValue["max_accuracy_drop"] == 0.01)
        let chosen = try Self.steps(#"[{"type": "prune", "amount": "auto", "max_accuracy_drop": 0.05}]"#)
        #expect(chosen.first?.jsonValue["max_accuracy_drop"] == 0.05)
    }

    @Test("Taylor pruning echoes its taylor_batches (16 by default); the other methods leave it out")
    func taylorBatches() throws {
        let taylor = try Self.steps(#"[{"type": "prune", "amount": 0.3, "method": "taylor"}]"#)
        #expect(taylor.first?.jsonValue["taylor_batches"] == 16)
        let chosen = try Self.steps(#"[{"type": "prune", "amount": 0.3, "method": "taylor", "taylor_batches": 4}]"#)
        guard case .prune(let prune)? = chosen.first else { Issue.record("not a prune step: \(chosen)"); return }
        #expect(prune.taylorBatches == 4)
        let magnitude = try Self.steps(#"[{"type": "prune", "amount": 0.3}]"#)
        guard case .object(let fields)? = magnitude.first?.jsonValue else { Issue.record("not an object"); return }
        #expect(!fields.keys.contains("taylor_batches"), "\(fields)")
    }

    @Test("Every option of a prune step is read as written")
    func pruneOptions() throws {
        let steps = try Self.steps(#"[{"type": "prune", "method": "random", "structure": "channel", "scope": "global", "amount": 0.25, "fine_tune_epochs": 2}]"#)
        var expected = PruneSpec()
        expected.method = .random
        expected.structure = .channel
        expected.scope = .global
        expected.amount = .fraction(0.25)
        expected.fineTuneEpochs = 2
        #expect(steps == [.prune(expected)])
        #expect(steps.first?.jsonValue == json("""
            {"type": "prune", "method": "random", "structure": "channel", "scope": "global", "amount": 0.25,
             "schedule": null, "fine_tune_epochs": 2}
            """))
    }

    @Test("Distillation defaults to temperature 4 and alpha 0.7, and the spec's JSON shows them")
    func distillationDefaults() throws {
        let spec = try JobSpec.parse(json(minimalSpec(#", "distillation": {"teacher_job": "job_teacher"}"#)))
        #expect(spec.distillation == DistillationSpec(teacherJob: "job_teacher", temperature: 4, alpha: 0.7))
        #expect(spec.jsonValue["distillation"] == json(#"{"teacher_job": "job_teacher", "temperature": 4, "alpha": 0.7}"#))
        let chosen = try JobSpec.parse(json(minimalSpec(#", "distillation": {"teacher_job": "job_t", "temperature": 2, "alpha": 0}"#)))
        #expect(chosen.distillation == DistillationSpec(teacherJob: "job_t", temperature: 2, alpha: 0))
    }

    @Test("A spec without compression or distillation has an empty pipeline and null distillation")
    func absentMeansNone() throws {
        for text in [minimalSpec(), minimalSpec(#", "compression": null, "distillation": null"#), minimalSpec(#", "compression": []"#)] {
            let spec = try JobSpec.parse(json(text))
            #expect(spec.compression.isEmpty)
            #expect(spec.distillation == nil)
            #expect(spec.jsonValue["compression"] == .array([]))
            #expect(spec.jsonValue["distillation"] == .null)
        }
    }

    @Test("The filled-in JSON of a full pipeline parses back to the same steps, in order")
    func roundTrip() throws {
        let text = Self.spec(compression: """
            [{"type": "sensitivity_analysis", "sparsities": [0, 0.5]},
             {"type": "prune", "amount": "auto", "max_accuracy_drop": 0.02},
             {"type": "prune", "method": "taylor", "amount": 0.5, "fine_tune_epochs": 3,
              "schedule": {"begin_epoch": 1, "end_epoch": 3, "frequency": 2, "initial_sparsity": 0.1, "power": 2}},
             {"type": "prune", "structure": "channel", "scope": "global", "amount": 0.25, "fine_tune_epochs": 1},
             {"type": "quantize", "bits": 2, "mode": "qat", "qat_epochs": 5, "calibration_batches": 4}]
            """, #", "distillation": {"teacher_job": "job_t", "temperature": 3, "alpha": 0.5}"#)
        let spec = try JobSpec.parse(json(text))
        #expect(spec.compression.map(\.typeName) == ["sensitivity_analysis", "prune", "prune", "prune", "quantize"])
        let reparsed = try JobSpec.parse(spec.jsonValue)
        #expect(reparsed.compression == spec.compression)
        #expect(reparsed.distillation == spec.distillation)
        #expect(reparsed.jsonValue == spec.jsonValue)
        let fromText = try JobSpec.parse(Data(spec.jsonValue.encodedString().utf8))
        #expect(fromText.compression == spec.compression)
    }

    // MARK: Refusals

    /// Specs with exactly one problem, its path, and words its message must contain.
    static let singleProblems: [(spec: String, path: String, message: String)] = [
        // prune: amount
        (spec(compression: #"[{"type": "prune", "amount": 1.5}]"#), "compression[0].amount", "must be a fraction in [0, 1) or \"auto\", got 1.5"),
        (spec(compression: #"[{"type": "prune", "amount": 1}]"#), "compression[0].amount", "must be a fraction in [0, 1) or \"auto\", got 1"),
        (spec(compression: #"[{"type": "prune", "amount": -0.1}]"#), "compression[0].amount", "must be a fraction in [0, 1)"),
        (spec(compression: #"[{"type": "prune"}]"#), "compression[0].amount", "is required"),
        (spec(compression: #"[{"type": "prune", "amount": null}]"#), "compression[0].amount", "is required"),
        (spec(compression: #"[{"type": "prune", "amount": "half"}]"#), "compression[0].amount", "got \"half\""),
        (spec(compression: #"[{"type": "prune", "amount": "auto", "scope": "global"}]"#), "compression[0].amount", "needs scope \"local\""),
        (spec(compression: #"[{"type": "prune", "amount": "auto", "structure": "channel"}]"#), "compression[0].amount", "use structure \"unstructured\""),
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "max_accuracy_drop": 0.1}]"#),
         "compression[0].max_accuracy_drop", "applies only with amount \"auto\""),
        (spec(compression: #"[{"type": "prune", "amount": "auto", "max_accuracy_drop": 2}]"#), "compression[0].max_accuracy_drop", "must be in [0, 1], got 2"),
        // prune: names and counts
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "method": "l1"}]"#), "compression[0].method", "must be one of magnitude, taylor, random, got \"l1\""),
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "structure": "filter"}]"#), "compression[0].structure", "must be one of unstructured, channel"),
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "scope": "layer"}]"#), "compression[0].scope", "must be one of local, global"),
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "fine_tune_epochs": -1}]"#), "compression[0].fine_tune_epochs", "got -1"),
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "fine_tune_epochs": 1.5}]"#), "compression[0].fine_tune_epochs", "must be an integer"),
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "method": "taylor", "taylor_batches": 0}]"#), "compression[0].taylor_batches", "got 0"),
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "sparsity": 0.5}]"#), "compression[0].sparsity", "unknown key"),
        // prune: schedule
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "fine_tune_epochs": 3, "schedule": {"end_epoch": 5}}]"#),
         "compression[0].schedule.end_epoch", "is 5, after the last fine-tuning epoch; set fine_tune_epochs ≥ 5"),
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "fine_tune_epochs": 4, "schedule": {"begin_epoch": 3, "end_epoch": 2}}]"#),
         "compression[0].schedule.end_epoch", "must be ≥ begin_epoch (3), got 2"),
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "fine_tune_epochs": 2, "schedule": {"type": "exponential"}}]"#),
         "compression[0].schedule.type", "must be \"polynomial\", got \"exponential\""),
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "fine_tune_epochs": 2, "schedule": {"power": 0}}]"#),
         "compression[0].schedule.power", "must be > 0"),
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "fine_tune_epochs": 2, "schedule": {"initial_sparsity": 1}}]"#),
         "compression[0].schedule.initial_sparsity", "must be in [0, 1)"),
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "fine_tune_epochs": 2, "schedule": {"frequency": 0}}]"#),
         "compression[0].schedule.frequency", "got 0"),
        (spec(compression: #"[{"type": "prune", "amount": 0.5, "fine_tune_epochs": 2, "schedule": {"steps": 3}}]"#),
         "compression[0].schedule.steps", "unknown key"),
        (spec(compression: #"[{"type": "prune", "amount": "auto", "schedule": {}}]"#), "compression[0].schedule", "needs a fraction amount"),
        // sensitivity analysis
        (spec(compression: #"[{"type": "sensitivity_analysis", "sparsities": []}]"#), "compression[0].sparsities", "must list at least one sparsity"),
        (spec(compression: #"[{"type": "sensitivity_analysis", "sparsities": [0, 1]}]"#), "compression[0].sparsities", "must each be in [0, 1), got 1"),
        (spec(compression: #"[{"type": "sensitivity_analysis", "sparsities": [0, "x"]}]"#), "compression[0].sparsities[1]", "must be a number"),
        (spec(compression: #"[{"type": "sensitivity_analysis", "amount": 0.5}]"#), "compression[0].amount", "unknown key"),
        // quantize
        (spec(compression: #"[{"type": "quantize", "bits": 3}]"#), "compression[0].bits", "must be 8, 4, 2 or 1, got 3"),
        (spec(compression: #"[{"type": "quantize", "bits": 16}]"#), "compression[0].bits", "must be 8, 4, 2 or 1, got 16"),
        (spec(compression: #"[{"type": "quantize", "scheme": "asymmetric"}]"#), "compression[0].scheme", "must be one of symmetric, affine"),
        (spec(compression: #"[{"type": "quantize", "granularity": "per_row"}]"#), "compression[0].granularity", "must be one of per_tensor, per_channel"),
        (spec(compression: #"[{"type": "quantize", "mode": "dynamic"}]"#), "compression[0].mode", "must be one of ptq, qat"),
        (spec(compression: #"[{"type": "quantize", "qat_epochs": 2}]"#), "compression[0].qat_epochs", "applies only with mode \"qat\""),
        (spec(compression: #"[{"type": "quantize", "mode": "ptq", "qat_epochs": 2}]"#), "compression[0].qat_epochs", "applies only with mode \"qat\""),
        (spec(compression: #"[{"type": "quantize", "mode": "qat", "qat_epochs": 0}]"#), "compression[0].qat_epochs", "got 0"),
        (spec(compression: #"[{"type": "quantize", "calibration_batches": 0}]"#), "compression[0].calibration_batches", "got 0"),
        // the pipeline
        (spec(compression: #"[{"type": "distill"}]"#), "compression[0].type", "must be prune, sensitivity_analysis or quantize, got \"distill\""),
        (spec(compression: #"[{"amount": 0.5}]"#), "compression[0].type", "is required"),
        (spec(compression: #"[0.5]"#), "compression[0]", "must be an object"),
        (spec(compression: #"{"type": "prune", "amount": 0.5}"#), "compression", "must be an array"),
        (spec(compression: #"[{"type": "quantize"}, {"type": "prune", "amount": 0.5}]"#), "compression[0]", "quantize must be the last step"),
        (spec(compression: #"[{"type": "sensitivity_analysis"}, {"type": "quantize"}, {"type": "sensitivity_analysis"}]"#),
         "compression[1]", "quantize must be the last step"),
        (spec(compression: #"[{"type": "prune", "amount": 0.5}, {"type": "sensitivity_analysis"}]"#, #", "validation": {"split": 0}"#),
         "compression[1]", "sensitivity analysis evaluates on the validation set"),
        (spec(compression: #"[{"type": "prune", "amount": "auto"}]"#, #", "validation": {"split": 0}"#),
         "compression[0]", "give validation a split > 0 or a dataset"),
        // distillation
        (minimalSpec(#", "distillation": {}"#), "distillation.teacher_job", "is required"),
        (minimalSpec(#", "distillation": {"teacher_job": 7}"#), "distillation.teacher_job", "must be a string"),
        (minimalSpec(#", "distillation": {"teacher_job": "job_t", "temperature": 0}"#), "distillation.temperature", "must be in (0, 100], got 0"),
        (minimalSpec(#", "distillation": {"teacher_job": "job_t", "temperature": -2}"#), "distillation.temperature", "must be in (0, 100], got -2"),
        (minimalSpec(#", "distillation": {"teacher_job": "job_t", "temperature": 101}"#), "distillation.temperature", "must be in (0, 100]"),
        (minimalSpec(#", "distillation": {"teacher_job": "job_t", "alpha": 1.5}"#), "distillation.alpha", "must be in [0, 1], got 1.5"),
        (minimalSpec(#", "distillation": {"teacher_job": "job_t", "alpha": -0.5}"#), "distillation.alpha", "must be in [0, 1]"),
        (minimalSpec(#", "distillation": {"teacher_job": "job_t", "beta": 1}"#), "distillation.beta", "unknown key"),
        (minimalSpec(#", "distillation": "job_t""#), "distillation", "must be an object"),
        (minimalSpec(#", "distillation": {"teacher_job": "job_t"}, "augmentation": [{"type": "mixup", "alpha": 0.2}]"#),
         "distillation", "cannot be combined with mixup"),
        (minimalSpec(#", "distillation": {"teacher_job": "job_t"}, "loss": "mse""#), "distillation", "needs a classification job with loss \"cross_entropy\""),
        (minimalSpec(#", "distillation": {"teacher_job": "job_t"}, "loss": "huber""#), "distillation", "\"cross_entropy\""),
        // GAN jobs
        (ganSpec(#", "compression": [{"type": "quantize"}]"#), "compression", "not supported for GAN jobs"),
        (ganSpec(#", "distillation": {"teacher_job": "job_t"}"#), "distillation", "not supported"),
    ]

    @Test("Each invalid compression or distillation spec is refused with the path and message of its one problem",
          arguments: singleProblems.indices)
    func singleProblem(case index: Int) {
        let (spec, path, message) = Self.singleProblems[index]
        let issues = problems(spec)
        #expect(issues.count == 1, "\(spec) → \(issues)")
        #expect(issues.first?.path == path, "\(spec) → \(issues)")
        #expect(issues.first?.message.contains(message) == true, "\(issues.first?.message ?? "nothing") lacks \"\(message)\"")
    }

    @Test("A GAN job may give an empty compression pipeline")
    func ganWithEmptyPipeline() {
        #expect(problems(ganSpec(#", "compression": []"#)) == [])
    }

    @Test("Every problem of every step is reported at once, each at its own index")
    func everyProblemAtOnce() {
        let issues = problems(Self.spec(compression: """
            [{"type": "prune", "amount": 2, "method": "l2"},
             {"type": "sensitivity_analysis", "sparsities": [1.5]},
             {"type": "quantize", "bits": 3, "qat_epochs": 2},
             {"type": "prune", "amount": 0.5}]
            """, #", "distillation": {"teacher_job": "job_t", "temperature": 0, "alpha": 3}"#))
        let expected: Set = [
            "compression[0].amount", "compression[0].method", "compression[1].sparsities", "compression[2].bits",
            "compression[2].qat_epochs", "compression[2]", "distillation.temperature", "distillation.alpha",
        ]
        #expect(Set(issues.map(\.path)) == expected, "\(issues)")
        #expect(issues.count == expected.count, "\(issues)")
        #expect(issues.first { $0.path == "compression[2]" }?.message.contains("last step") == true)
    }

    @Test("A distillation without a teacher still has its temperature and alpha checked in the same answer")
    func distillationWithoutTeacherReportsEverything() {
        // API.md § Errors: details list every problem at once. DistillationSpec.read returns before
        // checking temperature and alpha when teacher_job is missing or not a string.
        let issues = problems(minimalSpec(#", "distillation": {"temperature": 0, "alpha": 3}"#))
        #expect(Set(issues.map(\.path)) == ["distillation.teacher_job", "distillation.temperature", "distillation.alpha"], "\(issues)")
    }

    @Test("The loss name \"distillation\" points to the top-level distillation key without calling it unsupported")
    func distillationAsALossName() {
        let issues = problems(minimalSpec(#", "loss": "distillation""#))
        #expect(issues.map(\.path) == ["loss"], "\(issues)")
        #expect(issues.first?.message.contains("\"distillation\" key") == true, "\(issues)")
        #expect(issues.first?.message.contains("not supported yet") == false, "\(issues)")
    }

    // MARK: Against the data

    static let threeClasses = DatasetSummary(rows: 200, sampleShape: [2], task: .classification, classCount: 3, targetCount: 1)
    static let regression = DatasetSummary(rows: 200, sampleShape: [2], task: .regression, classCount: nil, targetCount: 1)

    @Test("Channel pruning of a model with no dense layer feeding another is refused once the model is resolved")
    func channelPruningNeedsAPrunableLayer() throws {
        let single = try JobSpec.parse(json(Self.spec(compression: #"[{"type": "sensitivity_analysis"}, {"type": "prune", "structure": "channel", "amount": 0.5}]"#)))
        do {
            _ = try single.resolved(for: Self.threeClasses)
            Issue.record("a single dense layer has no channel to prune, yet the spec resolved")
        } catch {
            #expect(error.issues.map(\.path) == ["compression[1].structure"], "\(error.issues)")
            #expect(error.issues.first?.message.contains("channel pruning needs a dense or conv2d layer") == true)
            #expect(error.issues.first?.message.contains("use \"unstructured\"") == true)
        }
        // Unstructured pruning of the same model is fine.
        let unstructured = try JobSpec.parse(json(Self.spec(compression: #"[{"type": "prune", "amount": 0.5}]"#)))
        _ = try unstructured.resolved(for: Self.threeClasses)
        // Two dense layers: the first one's units can go.
        let twoLayers = try JobSpec.parse(json("""
            {"dataset": {"id": "ds_x"}, "model": {"layers": [{"type": "dense", "units": 8, "activation": "relu"}, {"type": "dense", "units": 3}]},
             "compression": [{"type": "prune", "structure": "channel", "amount": 0.5}]}
            """))
        let resolved = try twoLayers.resolved(for: Self.threeClasses)
        #expect(resolved.compression == twoLayers.compression)
    }

    @Test("Distillation on a dataset with a numeric target is refused when resolved against it")
    func distillationNeedsClasses() throws {
        let spec = try JobSpec.parse(json(minimalSpec(#", "distillation": {"teacher_job": "job_t"}"#)))
        do {
            _ = try spec.resolved(for: Self.regression)
            Issue.record("distillation resolved against a regression dataset")
        } catch {
            let distillation = error.issues.filter { $0.path == "distillation" }
            #expect(distillation.count == 1, "\(error.issues)")
            #expect(distillation.first?.message.contains("needs class targets") == true, "\(error.issues)")
        }
        let classification = try spec.resolved(for: Self.threeClasses)
        #expect(classification.distillation == spec.distillation)
    }

    // MARK: Planned epochs

    @Test("plannedEpochs adds every fine-tuning and QAT epoch to the training epochs, and nothing for PTQ or sensitivity analysis")
    func plannedEpochs() throws {
        let none = try JobSpec.parse(json(minimalSpec(#", "training": {"epochs": 7}"#)))
        #expect(none.plannedEpochs == 7)

        let ptq = try JobSpec.parse(json(Self.spec(compression: #"[{"type": "sensitivity_analysis"}, {"type": "prune", "amount": 0.5}, {"type": "quantize"}]"#,
                                                   #", "training": {"epochs": 7}"#)))
        #expect(ptq.plannedEpochs == 7)

        let full = try JobSpec.parse(json(Self.spec(compression: """
            [{"type": "prune", "amount": 0.5, "fine_tune_epochs": 2},
             {"type": "sensitivity_analysis"},
             {"type": "prune", "amount": 0.5, "fine_tune_epochs": 3, "schedule": {"end_epoch": 2}},
             {"type": "quantize", "mode": "qat", "qat_epochs": 4}]
            """, #", "training": {"epochs": 5}"#)))
        #expect(full.plannedEpochs == 5 + 2 + 3 + 4)

        let defaultQAT = try JobSpec.parse(json(Self.spec(compression: #"[{"type": "quantize", "mode": "qat"}]"#, #", "training": {"epochs": 2}"#)))
        #expect(defaultQAT.plannedEpochs == 2 + 3)
    }
}
