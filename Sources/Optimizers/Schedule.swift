/// The learning-rate schedules of API.md (`schedule.type`), with torch's parameters and defaults.
///
/// Each case is one `torch.optim.lr_scheduler` class (named in its comment); the labels are
/// torch's arguments in Swift case (`step_size` → `stepSize`, `T_max` → `tMax`), and the job-spec
/// reader maps the spec's names onto them. Values are not checked here: `problems` lists what is
/// wrong, and `LearningRateSchedule.init` refuses them.
public enum ScheduleKind: Sendable, Equatable, Codable {
    /// StepLR: the learning rate is multiplied by `gamma` every `stepSize` steps.
    case step(stepSize: Int, gamma: Double = 0.1)
    /// MultiStepLR: the learning rate is multiplied by `gamma` at each milestone, an increasing
    /// list of steps ≥ 1.
    case multistep(milestones: [Int], gamma: Double = 0.1)
    /// ExponentialLR: the learning rate is multiplied by `gamma` every step.
    case exponential(gamma: Double)
    /// CosineAnnealingLR: half a cosine from the base learning rate down to `etaMin` over `tMax`
    /// steps. There is no restart: past `tMax` it follows the cosine back up, as torch does.
    case cosine(tMax: Int, etaMin: Double = 0)
    /// CosineAnnealingWarmRestarts (SGDR): a cosine from the base learning rate to `etaMin` over
    /// `t0` steps, then back to the base learning rate, each period `tMult` times the last.
    case cosineWarmRestarts(t0: Int, tMult: Int = 1, etaMin: Double = 0)
    /// LinearLR: the factor applied to the base learning rate goes linearly from `startFactor`
    /// to `endFactor` over `totalIters` steps, and stays at `endFactor` afterwards.
    case linear(startFactor: Double = 1.0 / 3, endFactor: Double = 1.0, totalIters: Int = 5)
    /// PolynomialLR: lr·(1 − t/totalIters)^power, and 0 from step `totalIters` on.
    case polynomial(totalIters: Int = 5, power: Double = 1)
    /// OneCycleLR, given `total_steps` (torch's alternative, `epochs` × `steps_per_epoch`, is
    /// the spec reader's to compute). The cycle starts at `maxLr / divFactor` and ends at
    /// `maxLr / divFactor / finalDivFactor`; the optimizer's learning rate is not used.
    case oneCycle(
        maxLr: Double, totalSteps: Int, pctStart: Double = 0.3, annealStrategy: AnnealStrategy = .cos,
        divFactor: Double = 25, finalDivFactor: Double = 1e4, threePhase: Bool = false)
    /// ReduceLROnPlateau: the learning rate is multiplied by `factor` when the monitored metric
    /// has not improved for more than `patience` steps. (The spec's `monitor` names the metric;
    /// `mode` is whether it should go down or up.)
    case reduceOnPlateau(
        mode: PlateauMode = .min, factor: Double = 0.1, patience: Int = 10, threshold: Double = 1e-4,
        thresholdMode: ThresholdMode = .rel, cooldown: Int = 0, minLr: Double = 0, eps: Double = 1e-8)

    /// OneCycleLR's `anneal_strategy`.
    public enum AnnealStrategy: String, Sendable, Codable, CaseIterable {
        case cos, linear
    }

    /// ReduceLROnPlateau's `mode`: whether the metric should decrease (a loss) or increase (an accuracy).
    public enum PlateauMode: String, Sendable, Codable, CaseIterable {
        case min, max
    }

    /// ReduceLROnPlateau's `threshold_mode`: whether an improvement must beat the best value by
    /// `threshold` times it (`rel`) or by `threshold` itself (`abs`).
    public enum ThresholdMode: String, Sendable, Codable, CaseIterable {
        case rel, abs
    }

    /// The spec's `schedule.type` of this kind.
    public var typeName: String {
        switch self {
        case .step: "step"
        case .multistep: "multistep"
        case .exponential: "exponential"
        case .cosine: "cosine"
        case .cosineWarmRestarts: "cosine_warm_restarts"
        case .linear: "linear"
        case .polynomial: "polynomial"
        case .oneCycle: "one_cycle"
        case .reduceOnPlateau: "reduce_on_plateau"
        }
    }

    /// Every invalid parameter, in field order (empty when valid), named as in the spec's
    /// `schedule` object (`"gamma"`, `"milestones[1]"`, `"t_max"`).
    ///
    /// torch's own checks, plus those that keep the learning rate finite and positive where torch
    /// would divide by zero or decay by a non-positive factor; every number must be finite.
    public var problems: [OptimizerError] {
        switch self {
        case .step(let stepSize, let gamma):
            return [ScheduleCheck.atLeast(1, stepSize, "step_size"), ScheduleCheck.positive(gamma, "gamma")].compactMap { $0 }

        case .multistep(let milestones, let gamma):
            // No milestones is allowed, as in torch and the spec's schema: a constant learning rate.
            var problems: [OptimizerError] = []
            for (index, milestone) in milestones.enumerated() {
                // Step 0 is the schedule's start: a milestone there would never fire.
                if let problem = ScheduleCheck.atLeast(1, milestone, "milestones[\(index)]") {
                    problems.append(problem)
                } else if index > 0, milestone <= milestones[index - 1] {
                    problems.append(OptimizerError(
                        field: "milestones[\(index)]",
                        message: "must be greater than milestones[\(index - 1)] (\(milestones[index - 1])), got \(milestone)"))
                }
            }
            return problems + [ScheduleCheck.positive(gamma, "gamma")].compactMap { $0 }

        case .exponential(let gamma):
            return [ScheduleCheck.positive(gamma, "gamma")].compactMap { $0 }

        case .cosine(let tMax, let etaMin):
            return [ScheduleCheck.atLeast(1, tMax, "t_max"), ScheduleCheck.nonNegative(etaMin, "eta_min")].compactMap { $0 }

        case .cosineWarmRestarts(let t0, let tMult, let etaMin):
            return [
                ScheduleCheck.atLeast(1, t0, "t_0"), ScheduleCheck.atLeast(1, tMult, "t_mult"), ScheduleCheck.nonNegative(etaMin, "eta_min"),
            ].compactMap { $0 }

        case .linear(let startFactor, let endFactor, let totalIters):
            return [
                ScheduleCheck.inRange(startFactor, "start_factor", "(0, 1]") { $0 > 0 && $0 <= 1 },
                ScheduleCheck.inRange(endFactor, "end_factor", "[0, 1]") { $0 >= 0 && $0 <= 1 },
                ScheduleCheck.atLeast(1, totalIters, "total_iters"),
            ].compactMap { $0 }

        case .polynomial(let totalIters, let power):
            // A power ≤ 0 would not decay (0) or divide by zero at the end (< 0).
            return [ScheduleCheck.atLeast(1, totalIters, "total_iters"), ScheduleCheck.positive(power, "power")].compactMap { $0 }

        case .oneCycle(let maxLr, let totalSteps, let pctStart, _, let divFactor, let finalDivFactor, let threePhase):
            var problems = [
                ScheduleCheck.positive(maxLr, "max_lr"),
                ScheduleCheck.atLeast(2, totalSteps, "total_steps"),
                ScheduleCheck.inRange(pctStart, "pct_start", "(0, 1)") { $0 > 0 && $0 < 1 },
                ScheduleCheck.positive(divFactor, "div_factor"),
                ScheduleCheck.positive(finalDivFactor, "final_div_factor"),
            ].compactMap { $0 }
            // torch divides by each phase's length: with too few steps a phase is empty (0/0).
            if !problems.contains(where: { $0.field == "total_steps" || $0.field == "pct_start" }) {
                var start = 0.0
                for (index, end) in ScheduleRules.oneCyclePhaseEnds(totalSteps: totalSteps, pctStart: pctStart, threePhase: threePhase).enumerated() {
                    if end - start <= 0 {
                        problems.append(OptimizerError(
                            field: "pct_start",
                            message: "leaves phase \(index + 1) of the cycle without steps with total_steps \(totalSteps)"
                                + (threePhase ? " and three_phase" : "") + ", got \(pctStart)"))
                        break
                    }
                    start = end
                }
            }
            return problems

        case .reduceOnPlateau(_, let factor, let patience, let threshold, let thresholdMode, let cooldown, let minLr, let eps):
            var thresholdProblem = ScheduleCheck.nonNegative(threshold, "threshold")
            // Relative to the best value, a threshold of 1 or more asks for an improvement of 100 %.
            if thresholdProblem == nil, thresholdMode == .rel, threshold >= 1 {
                thresholdProblem = OptimizerError(
                    field: "threshold", message: "must be in [0, 1) with threshold_mode rel, got \(threshold)")
            }
            return [
                ScheduleCheck.inRange(factor, "factor", "(0, 1)") { $0 > 0 && $0 < 1 },
                ScheduleCheck.atLeast(0, patience, "patience"),
                thresholdProblem,
                ScheduleCheck.atLeast(0, cooldown, "cooldown"),
                ScheduleCheck.nonNegative(minLr, "min_lr"),
                ScheduleCheck.nonNegative(eps, "eps"),
            ].compactMap { $0 }
        }
    }
}

/// A linear warm-up before a schedule, the spec's `"warmup": {"epochs": n, "start_factor": f}`.
///
/// The learning rate goes from `startFactor`·lr up to lr over `steps` scheduler steps, then the
/// schedule starts from its own beginning: torch's
/// `SequentialLR([LinearLR(start_factor=f, total_iters=n), schedule], milestones=[n])`.
/// ("lr" is the schedule's starting learning rate: the optimizer's, or `maxLr / divFactor` for
/// one-cycle.)
public struct Warmup: Sendable, Equatable, Codable {
    /// The spec's `epochs`: scheduler steps spent warming up (epochs or batches, as the schedule's `per`).
    public var steps: Int
    /// The spec's `start_factor`: the fraction of the learning rate used by the first step.
    public var startFactor: Double

    /// `startFactor` defaults to LinearLR's default, 1/3.
    public init(steps: Int, startFactor: Double = 1.0 / 3) {
        self.steps = steps
        self.startFactor = startFactor
    }

    /// Every invalid field, named as in the spec (`"warmup.epochs"`, `"warmup.start_factor"`).
    public var problems: [OptimizerError] {
        [
            ScheduleCheck.atLeast(1, steps, "warmup.epochs"),
            ScheduleCheck.inRange(startFactor, "warmup.start_factor", "(0, 1]") { $0 > 0 && $0 <= 1 },
        ].compactMap { $0 }
    }
}

/// A learning-rate schedule: the learning rate of each optimizer step, as torch 2.x's
/// `torch.optim.lr_scheduler` computes it, number for number.
///
/// Use: before each optimizer step (or epoch, as the spec's `per` says) set the optimizer's
/// learning rate to `learningRate`; after it call `step(metric:)`. The first `learningRate` is
/// the one for step 0.
///
///     var schedule = try LearningRateSchedule(kind: .cosine(tMax: 100), baseLearningRate: 0.1)
///     for batch in batches {
///         optimizer.learningRate = Float(schedule.learningRate)
///         …forward, backward, optimizer.step()…
///         schedule.step()
///     }
///
/// torch computes StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearLR and
/// PolynomialLR in their chainable (recursive) form, each learning rate from the previous one,
/// and the rest in closed form; so does this type, in the same order of operations, so that the
/// values agree to the bit on the reference cases (which only require 1e-9 relative; the closed
/// forms would differ from torch in the last bits).
///
/// Where torch has no answer, this type chooses (and its tests pin it):
/// - one-cycle past `totalSteps` stays at its final learning rate, `maxLr / divFactor /
///   finalDivFactor` (torch extrapolates one step, which is negative with linear annealing,
///   then raises);
/// - reduce-on-plateau after a warm-up (torch's SequentialLR refuses it) starts at the base
///   learning rate when the warm-up ends, and ignores the metrics given during the warm-up;
/// - one-cycle's momentum cycling (`cycle_momentum`, `base_momentum`, `max_momentum`) is not
///   implemented: only the learning rate is scheduled, the optimizer's momentum is left alone.
///
/// The value is a checkpoint: it is `Codable`, with its configuration and progress (step count,
/// current learning rate, plateau counters, warm-restart position), and decoding validates it.
public struct LearningRateSchedule: Sendable, Equatable {
    /// The schedule after the warm-up.
    public let kind: ScheduleKind
    /// The optimizer's learning rate, where the schedule starts (one-cycle uses its own, `maxLr / divFactor`).
    public let baseLearningRate: Double
    /// The linear warm-up before the schedule, if any.
    public let warmup: Warmup?

    /// The learning rate for the next optimizer step (or epoch).
    public internal(set) var learningRate: Double
    /// Scheduler steps taken so far: `learningRate` is the one for step `stepCount` (0-based).
    public internal(set) var stepCount = 0

    /// ReduceLROnPlateau's counters (unused by the other kinds).
    var plateau = PlateauState()
    /// CosineAnnealingWarmRestarts's position (unused by the other kinds).
    var restart: RestartState

    /// A schedule at step 0, after checking every value: the fields of `OptimizerError` are
    /// paths under the spec's `schedule` object (`"gamma"`, `"milestones[1]"`, `"warmup.epochs"`),
    /// except `"lr"`, the optimizer's learning rate, which must be finite and > 0.
    public init(kind: ScheduleKind, baseLearningRate: Double, warmup: Warmup? = nil) throws(OptimizerError) {
        if let first = Self.problems(kind: kind, baseLearningRate: baseLearningRate, warmup: warmup).first {
            throw first
        }
        self.kind = kind
        self.baseLearningRate = baseLearningRate
        self.warmup = warmup
        self.restart = RestartState(kind: kind)
        if let warmup {
            // LinearLR's first step: the schedule's starting learning rate times start_factor.
            learningRate = ScheduleRules.scheduleStartLearningRate(kind, base: baseLearningRate) * warmup.startFactor
        } else {
            learningRate = ScheduleRules.initialLearningRate(kind, base: baseLearningRate, afterWarmup: false)
        }
    }

    /// Every problem `init` would refuse, in field order: the base learning rate, the kind's, the warm-up's.
    public static func problems(kind: ScheduleKind, baseLearningRate: Double, warmup: Warmup?) -> [OptimizerError] {
        [ScheduleCheck.positive(baseLearningRate, "lr")].compactMap { $0 } + kind.problems + (warmup?.problems ?? [])
    }

    /// Advances one scheduler step, after an optimizer step: `learningRate` becomes the one for
    /// the next optimizer step.
    ///
    /// `metric` is the monitored value (the spec's `monitor`, e.g. the validation loss) after the
    /// step just taken. reduce-on-plateau requires it (a missing one is a programming error and
    /// stops the process) except during a warm-up; the other kinds ignore it. NaN counts as no
    /// improvement, as in torch.
    public mutating func step(metric: Double? = nil) {
        stepCount += 1
        let warmupSteps = warmup?.steps ?? 0
        if let warmup, stepCount < warmupSteps {
            learningRate = ScheduleRules.warmupStep(
                learningRate, step: stepCount, steps: warmup.steps, startFactor: warmup.startFactor)
        } else if warmup != nil, stepCount == warmupSteps {
            // SequentialLR at its milestone: the schedule restarts from its step 0, in closed form.
            learningRate = ScheduleRules.initialLearningRate(kind, base: baseLearningRate, afterWarmup: true)
        } else {
            advanceSchedule(toStep: stepCount - warmupSteps, metric: metric)
        }
    }
}

extension LearningRateSchedule {
    /// The counters of torch's ReduceLROnPlateau.
    struct PlateauState: Sendable, Equatable {
        /// The best metric so far; nil before the first one (torch's `mode_worse`, ±∞).
        var best: Double?
        /// torch's `num_bad_epochs`: steps since the last improvement.
        var badSteps = 0
        /// torch's `cooldown_counter`: steps left before bad steps count again.
        var cooldownCounter = 0
    }

    /// CosineAnnealingWarmRestarts's position in its current period.
    struct RestartState: Sendable, Equatable {
        /// torch's `T_cur`: steps since the last restart.
        var tCur = 0
        /// torch's `T_i`: the length of the current period.
        var tI = 1

        init(tCur: Int = 0, tI: Int = 1) {
            self.tCur = tCur
            self.tI = tI
        }

        /// The state torch's constructor leaves: at the start of the first period.
        init(kind: ScheduleKind) {
            if case .cosineWarmRestarts(let t0, _, _) = kind { tI = t0 }
        }
    }
}

// MARK: - Checks on schedule values

/// The checks of the schedule parameters, in Double (the optimizers' `Check` is for Float).
enum ScheduleCheck {
    static func positive(_ value: Double, _ field: String) -> OptimizerError? {
        guard value.isFinite else { return OptimizerError(field: field, message: "must be a finite number, got \(value)") }
        guard value > 0 else { return OptimizerError(field: field, message: "must be > 0, got \(value)") }
        return nil
    }

    static func nonNegative(_ value: Double, _ field: String) -> OptimizerError? {
        guard value.isFinite else { return OptimizerError(field: field, message: "must be a finite number, got \(value)") }
        guard value >= 0 else { return OptimizerError(field: field, message: "must be ≥ 0, got \(value)") }
        return nil
    }

    /// A value in the interval `interval` (as written in the message), which `contains` tests.
    static func inRange(
        _ value: Double, _ field: String, _ interval: String, _ contains: (Double) -> Bool
    ) -> OptimizerError? {
        contains(value) ? nil : OptimizerError(field: field, message: "must be in \(interval), got \(value)")
    }

    static func atLeast(_ minimum: Int, _ value: Int, _ field: String) -> OptimizerError? {
        value >= minimum ? nil : OptimizerError(field: field, message: "must be ≥ \(minimum), got \(value)")
    }
}
