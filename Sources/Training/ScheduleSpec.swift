import NeuralNetwork
import Optimizers

/// The spec's `schedule`: how the learning rate changes over the run.
///
/// `t_max` (cosine) and `total_steps` (one_cycle) may be left out: they then span the whole run,
/// which is only known once the training rows are counted, so `kind(runLength:)` fills them in.
public struct ScheduleSpec: Sendable, Equatable {
    public enum Unit: String, Sendable, CaseIterable { case epoch, step }
    /// What reduce_on_plateau watches, from the epoch's metrics.
    public enum Monitor: String, Sendable, CaseIterable { case val_loss, val_accuracy, train_loss, train_accuracy
        var prefersHigher: Bool { self == .val_accuracy || self == .train_accuracy }
    }

    /// The kind, with 0 for a `t_max` / `total_steps` that spans the run.
    public var kind: ScheduleKind
    public var per: Unit
    public var warmup: Warmup?
    public var monitor: Monitor

    /// The most scheduler steps any step count of a schedule may name: far beyond a real run
    /// (`training.epochs` ≤ 100 000 epochs of batches), and small enough that step arithmetic cannot overflow.
    public static let maxSteps = 1 << 40

    /// The schedule's kind with run-length placeholders replaced by `runLength` scheduler steps.
    public func kind(runLength: Int) -> ScheduleKind {
        switch kind {
        case .cosine(0, let etaMin): .cosine(tMax: max(runLength, 1), etaMin: etaMin)
        case .oneCycle(let maxLr, 0, let pctStart, let anneal, let div, let finalDiv, let threePhase):
            .oneCycle(maxLr: maxLr, totalSteps: max(runLength, 1), pctStart: pctStart, annealStrategy: anneal,
                      divFactor: div, finalDivFactor: finalDiv, threePhase: threePhase)
        default: kind
        }
    }

    static let keysByType: [String: [String]] = [
        "step": ["step_size", "gamma"],
        "multistep": ["milestones", "gamma"],
        "exponential": ["gamma"],
        "cosine": ["t_max", "eta_min"],
        "cosine_warm_restarts": ["t_0", "t_mult", "eta_min"],
        "linear": ["start_factor", "end_factor", "total_iters"],
        "polynomial": ["total_iters", "power"],
        "one_cycle": ["max_lr", "total_steps", "pct_start", "anneal_strategy", "div_factor", "final_div_factor", "three_phase"],
        "reduce_on_plateau": ["monitor", "mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps"],
    ]
    static let typeNames = ["step", "multistep", "exponential", "cosine", "cosine_warm_restarts", "linear", "polynomial",
                            "one_cycle", "reduce_on_plateau"]

    /// Reads `schedule` (null: a constant learning rate), reporting problems under `schedule.*`.
    static func read(_ root: ObjectReader, learningRate: Float?) -> ScheduleSpec? {
        guard let value = root.fields["schedule"], value != .null else { return nil }
        let path = root.childPath("schedule")
        guard case .object(let fields) = value else {
            root.diagnostics.report(path, "must be an object or null, got \(value.kindName)")
            return nil
        }
        guard case .string(let type)? = fields["type"], let keys = keysByType[type] else {
            root.diagnostics.report("\(path).type", "must be one of \(typeNames.joined(separator: ", "))"
                                    + (fields["type"].map { ", got \($0.briefDescription)" } ?? ""))
            return nil
        }
        guard let schedule = ObjectReader(value, path: path, diagnostics: root.diagnostics, allowedKeys: ["type", "per", "warmup"] + keys)
        else { return nil }
        func required(_ key: String) { if !schedule.has(key) { schedule.report(key, "is required for a \(type) schedule") } }
        let kind: ScheduleKind
        var monitor = Monitor.val_loss
        switch type {
        case "step":
            required("step_size")
            kind = .step(stepSize: schedule.int("step_size", default: 1, range: 1...Self.maxSteps), gamma: schedule.double("gamma", default: 0.1))
        case "multistep":
            required("milestones")
            kind = .multistep(milestones: schedule.intArray("milestones", range: 1...Self.maxSteps) ?? [], gamma: schedule.double("gamma", default: 0.1))
        case "exponential":
            required("gamma")
            kind = .exponential(gamma: schedule.double("gamma", default: 0.9))
        case "cosine":
            kind = .cosine(tMax: schedule.int("t_max", default: 0, range: 1...Self.maxSteps), etaMin: schedule.double("eta_min", default: 0))
        case "cosine_warm_restarts":
            required("t_0")
            kind = .cosineWarmRestarts(t0: schedule.int("t_0", default: 1, range: 1...Self.maxSteps),
                                       tMult: schedule.int("t_mult", default: 1, range: 1...1000),
                                       etaMin: schedule.double("eta_min", default: 0))
        case "linear":
            kind = .linear(startFactor: schedule.double("start_factor", default: 1.0 / 3), endFactor: schedule.double("end_factor", default: 1),
                           totalIters: schedule.int("total_iters", default: 5, range: 1...Self.maxSteps))
        case "polynomial":
            kind = .polynomial(totalIters: schedule.int("total_iters", default: 5, range: 1...Self.maxSteps), power: schedule.double("power", default: 1))
        case "one_cycle":
            required("max_lr")
            kind = .oneCycle(
                maxLr: schedule.double("max_lr", default: Double(learningRate ?? 0.01)),
                totalSteps: schedule.int("total_steps", default: 0, range: 1...Self.maxSteps),
                pctStart: schedule.double("pct_start", default: 0.3),
                annealStrategy: schedule.choice("anneal_strategy", default: ScheduleKind.AnnealStrategy.cos),
                divFactor: schedule.double("div_factor", default: 25), finalDivFactor: schedule.double("final_div_factor", default: 1e4),
                threePhase: schedule.bool("three_phase", default: false))
        default:  // reduce_on_plateau
            monitor = schedule.choice("monitor", default: Monitor.val_loss)
            let automatic: ScheduleKind.PlateauMode = monitor.prefersHigher ? .max : .min
            var mode = automatic
            if let given = schedule.optionalString("mode"), given != "auto" {
                if let parsed = ScheduleKind.PlateauMode(rawValue: given) { mode = parsed }
                else { schedule.report("mode", "must be auto, min or max, got \"\(given)\"") }
            }
            kind = .reduceOnPlateau(
                mode: mode, factor: schedule.double("factor", default: 0.1), patience: schedule.int("patience", default: 10, range: 0...Self.maxSteps),
                threshold: schedule.double("threshold", default: 1e-4),
                thresholdMode: schedule.choice("threshold_mode", default: ScheduleKind.ThresholdMode.rel),
                cooldown: schedule.int("cooldown", default: 0, range: 0...Self.maxSteps), minLr: schedule.double("min_lr", default: 0),
                eps: schedule.double("eps", default: 1e-8))
        }
        let per = schedule.choice("per", default: Unit.epoch)
        if type == "reduce_on_plateau", per == .step {
            schedule.report("per", "reduce_on_plateau watches an epoch's metric, so it steps per epoch")
        }
        var warmup: Warmup?
        if let object = schedule.object("warmup", allowedKeys: ["epochs", "start_factor"]) {
            if !object.has("epochs") { object.report("epochs", "is required: how many epochs (or steps, with per: step) to warm up") }
            warmup = Warmup(steps: object.int("epochs", default: 1, range: 1...Self.maxSteps), startFactor: object.double("start_factor", default: 1.0 / 3))
        }
        let spec = ScheduleSpec(kind: kind, per: per, warmup: warmup, monitor: monitor)
        // The schedule's own range checks, with run-length placeholders standing in as 1000 steps.
        let alreadyReported = Set(schedule.diagnostics.issues.map(\.path))
        for problem in LearningRateSchedule.problems(kind: spec.kind(runLength: 1000), baseLearningRate: Double(learningRate ?? 1), warmup: warmup)
        where problem.field != "lr" && !alreadyReported.contains(schedule.childPath(problem.field)) {
            schedule.report(problem.field, problem.message)
        }
        return spec
    }

    public var jsonValue: JSONValue {
        func runLength(_ value: Int) -> JSONValue { value == 0 ? .null : JSONValue(value) }
        var fields: [String: JSONValue]
        switch kind {
        case .step(let stepSize, let gamma): fields = ["step_size": JSONValue(stepSize), "gamma": JSONValue(gamma)]
        case .multistep(let milestones, let gamma): fields = ["milestones": JSONValue(milestones), "gamma": JSONValue(gamma)]
        case .exponential(let gamma): fields = ["gamma": JSONValue(gamma)]
        case .cosine(let tMax, let etaMin): fields = ["t_max": runLength(tMax), "eta_min": JSONValue(etaMin)]
        case .cosineWarmRestarts(let t0, let tMult, let etaMin):
            fields = ["t_0": JSONValue(t0), "t_mult": JSONValue(tMult), "eta_min": JSONValue(etaMin)]
        case .linear(let start, let end, let total):
            fields = ["start_factor": JSONValue(start), "end_factor": JSONValue(end), "total_iters": JSONValue(total)]
        case .polynomial(let total, let power): fields = ["total_iters": JSONValue(total), "power": JSONValue(power)]
        case .oneCycle(let maxLr, let totalSteps, let pctStart, let anneal, let div, let finalDiv, let threePhase):
            fields = ["max_lr": JSONValue(maxLr), "total_steps": runLength(totalSteps), "pct_start": JSONValue(pctStart),
                      "anneal_strategy": JSONValue(anneal.rawValue), "div_factor": JSONValue(div),
                      "final_div_factor": JSONValue(finalDiv), "three_phase": .bool(threePhase)]
        case .reduceOnPlateau(let mode, let factor, let patience, let threshold, let thresholdMode, let cooldown, let minLr, let eps):
            fields = ["monitor": JSONValue(monitor.rawValue), "mode": JSONValue(mode.rawValue), "factor": JSONValue(factor),
                      "patience": JSONValue(patience), "threshold": JSONValue(threshold), "threshold_mode": JSONValue(thresholdMode.rawValue),
                      "cooldown": JSONValue(cooldown), "min_lr": JSONValue(minLr), "eps": JSONValue(eps)]
        }
        fields["type"] = JSONValue(kind.typeName)
        fields["per"] = JSONValue(per.rawValue)
        fields["warmup"] = warmup.map { ["epochs": JSONValue($0.steps), "start_factor": JSONValue($0.startFactor)] } ?? .null
        return .object(fields)
    }
}
