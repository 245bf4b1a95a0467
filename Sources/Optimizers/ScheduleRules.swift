import Foundation

// torch 2.x's arithmetic for each scheduler, in its order of operations: Python evaluates
// `a * b / c` as `(a * b) / c` and converts ints to floats before mixing them, and so do these
// expressions (Swift's `cos` and `pow` are the same C library calls as Python's `math.cos` and `**`).

extension LearningRateSchedule {
    /// One step of the schedule after the warm-up: `step` is the schedule's own step number
    /// (torch's `last_epoch`), ≥ 1, and `learningRate` still holds the one for `step − 1`.
    mutating func advanceSchedule(toStep step: Int, metric: Double?) {
        let lr = learningRate
        let base = baseLearningRate
        switch kind {
        case .step(let stepSize, let gamma):
            // StepLR.get_lr (chainable)
            if step % stepSize == 0 { learningRate = lr * gamma }

        case .multistep(let milestones, let gamma):
            // MultiStepLR.get_lr: lr · gamma ** count; milestones are distinct, so count is 1
            // and gamma ** 1 is gamma exactly.
            if milestones.contains(step) { learningRate = lr * gamma }

        case .exponential(let gamma):
            learningRate = lr * gamma

        case .cosine(let tMax, let etaMin):
            // CosineAnnealingLR.get_lr: the ratio of consecutive cosine factors, except where the
            // previous factor is 0 (just past the minimum), where it adds the first step's rise.
            let t = Double(tMax)
            if (step - 1 - tMax) % (2 * tMax) == 0 {
                learningRate = lr + (base - etaMin) * (1 - cos(Double.pi / t)) / 2
            } else {
                learningRate = (1 + cos(Double.pi * Double(step) / t)) / (1 + cos(Double.pi * Double(step - 1) / t))
                    * (lr - etaMin) + etaMin
            }

        case .cosineWarmRestarts(_, let tMult, let etaMin):
            // CosineAnnealingWarmRestarts.step() without an epoch, then get_lr (closed form).
            restart.tCur += 1
            if restart.tCur >= restart.tI {
                restart.tCur %= restart.tI
                // Saturates: a period longer than Int.max steps outlasts any run all the same.
                let (longer, overflow) = restart.tI.multipliedReportingOverflow(by: tMult)
                restart.tI = overflow ? Int.max : longer
            }
            learningRate = ScheduleRules.warmRestartLearningRate(base: base, etaMin: etaMin, restart: restart)

        case .linear(let startFactor, let endFactor, let totalIters):
            // LinearLR.get_lr (chainable); constant after total_iters.
            if step <= totalIters {
                learningRate = lr * (1.0 + (endFactor - startFactor)
                    / (Double(totalIters) * startFactor + Double(step - 1) * (endFactor - startFactor)))
            }

        case .polynomial(let totalIters, let power):
            // PolynomialLR.get_lr (chainable); it reaches 0 at total_iters and stays there.
            if step <= totalIters {
                let t = Double(totalIters)
                let decayFactor = pow((1.0 - Double(step) / t) / (1.0 - Double(step - 1) / t), power)
                learningRate = lr * decayFactor
            }

        case .oneCycle:
            learningRate = ScheduleRules.oneCycleLearningRate(kind, step: step)

        case .reduceOnPlateau(let mode, let factor, let patience, let threshold, let thresholdMode, let cooldown, let minLr, let eps):
            guard let current = metric else {
                preconditionFailure("reduce_on_plateau needs the monitored metric at every step after the warm-up (step \(stepCount))")
            }
            // ReduceLROnPlateau.step
            if ScheduleRules.isBetter(current, than: plateau.best, mode: mode, threshold: threshold, thresholdMode: thresholdMode) {
                plateau.best = current
                plateau.badSteps = 0
            } else {
                plateau.badSteps += 1
            }
            if plateau.cooldownCounter > 0 {
                plateau.cooldownCounter -= 1
                plateau.badSteps = 0  // bad steps during the cooldown do not count
            }
            if plateau.badSteps > patience {
                // _reduce_lr: a decay smaller than eps is skipped (it would only add noise).
                let reduced = max(lr * factor, minLr)
                if lr - reduced > eps { learningRate = reduced }
                plateau.cooldownCounter = cooldown
                plateau.badSteps = 0
            }
        }
    }
}

/// The closed-form pieces of the schedules.
enum ScheduleRules {
    /// The learning rate the schedule starts from, which a warm-up leads up to: the optimizer's,
    /// except for one-cycle, which sets its own (torch's OneCycleLR overwrites `initial_lr`).
    static func scheduleStartLearningRate(_ kind: ScheduleKind, base: Double) -> Double {
        if case .oneCycle(let maxLr, _, _, _, let divFactor, _, _) = kind { return maxLr / divFactor }
        return base
    }

    /// The learning rate of the schedule's step 0.
    ///
    /// Standalone it is what torch's constructor sets (`_initial_step`); after a warm-up it is what
    /// SequentialLR sets at the milestone, `_update_lr(0)`, which uses the closed form where the
    /// scheduler has one. The two differ only for cosine with `eta_min` > 0, by rounding:
    /// `eta_min + (lr − eta_min)` instead of `lr`.
    static func initialLearningRate(_ kind: ScheduleKind, base: Double, afterWarmup: Bool) -> Double {
        switch kind {
        case .step, .multistep, .exponential, .polynomial, .reduceOnPlateau:
            // Closed forms at 0: base · gamma ** 0 and base · 1.0 ** power are base exactly.
            return base
        case .cosine(let tMax, let etaMin):
            guard afterWarmup else { return base }
            return etaMin + (base - etaMin) * (1 + cos(Double.pi * 0 / Double(tMax))) / 2
        case .cosineWarmRestarts(let t0, _, let etaMin):
            // Its own step() computes the closed form even at 0.
            return warmRestartLearningRate(base: base, etaMin: etaMin, restart: .init(tCur: 0, tI: t0))
        case .linear(let startFactor, _, _):
            return base * startFactor
        case .oneCycle:
            return oneCycleLearningRate(kind, step: 0)
        }
    }

    /// One step of the warm-up's LinearLR (end factor 1, `total_iters` = `steps`), chainable form.
    static func warmupStep(_ lr: Double, step: Int, steps: Int, startFactor: Double) -> Double {
        lr * (1.0 + (1.0 - startFactor) / (Double(steps) * startFactor + Double(step - 1) * (1.0 - startFactor)))
    }

    /// CosineAnnealingWarmRestarts.get_lr.
    static func warmRestartLearningRate(base: Double, etaMin: Double, restart: LearningRateSchedule.RestartState) -> Double {
        etaMin + (base - etaMin) * (1 + cos(Double.pi * Double(restart.tCur) / Double(restart.tI))) / 2
    }

    /// OneCycleLR's `end_step` of each phase: the last step of the rise, (of the fall back to the
    /// initial learning rate, with three phases,) and of the annealing.
    static func oneCyclePhaseEnds(totalSteps: Int, pctStart: Double, threePhase: Bool) -> [Double] {
        let total = Double(totalSteps)
        if threePhase {
            return [pctStart * total - 1, 2 * pctStart * total - 2, total - 1]
        }
        return [pctStart * total - 1, total - 1]
    }

    /// OneCycleLR.get_lr at `step` (closed form), learning rate only. From `totalSteps` on, the
    /// cycle is over and the learning rate stays at its end, `maxLr / divFactor / finalDivFactor`.
    static func oneCycleLearningRate(_ kind: ScheduleKind, step: Int) -> Double {
        guard case .oneCycle(let maxLr, let totalSteps, let pctStart, let strategy, let divFactor, let finalDivFactor, let threePhase) = kind
        else { preconditionFailure("not a one-cycle schedule") }
        let initialLr = maxLr / divFactor
        let minLr = initialLr / finalDivFactor
        if step >= totalSteps { return minLr }

        let ends = oneCyclePhaseEnds(totalSteps: totalSteps, pctStart: pctStart, threePhase: threePhase)
        let bounds: [(start: Double, end: Double)] = threePhase
            ? [(initialLr, maxLr), (maxLr, initialLr), (initialLr, minLr)]
            : [(initialLr, maxLr), (maxLr, minLr)]
        var startStep = 0.0
        for (index, endStep) in ends.enumerated() {
            if Double(step) <= endStep || index == ends.count - 1 {
                let pct = (Double(step) - startStep) / (endStep - startStep)
                let (start, end) = bounds[index]
                switch strategy {
                case .cos:
                    let cosOut = cos(Double.pi * pct) + 1
                    return end + (start - end) / 2.0 * cosOut
                case .linear:
                    return (end - start) * pct + start
                }
            }
            startStep = endStep
        }
        preconditionFailure("unreachable: the last phase always matches")
    }

    /// ReduceLROnPlateau.is_better; no best yet is torch's `mode_worse` (∞ for min, −∞ for max).
    static func isBetter(
        _ value: Double, than best: Double?, mode: ScheduleKind.PlateauMode, threshold: Double,
        thresholdMode: ScheduleKind.ThresholdMode
    ) -> Bool {
        switch (mode, thresholdMode) {
        case (.min, .rel): value < (best ?? .infinity) * (1.0 - threshold)
        case (.min, .abs): value < (best ?? .infinity) - threshold
        case (.max, .rel): value > (best ?? -.infinity) * (threshold + 1.0)
        case (.max, .abs): value > (best ?? -.infinity) + threshold
        }
    }
}
