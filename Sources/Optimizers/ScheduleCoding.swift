import Foundation

/// A schedule encodes as a checkpoint: its configuration (`kind`, `base_learning_rate`,
/// `warmup`) and its progress (`step_count`, `learning_rate`, and for reduce-on-plateau
/// `plateau` {`best`, `bad_steps`, `cooldown_counter`}, for warm restarts `restart`
/// {`t_cur`, `t_i`}). The learning rate is stored rather than recomputed because torch's
/// chainable schedulers derive each value from the previous one.
///
/// Decoding refuses what `init` refuses and progress that the configuration cannot reach, so a
/// restored schedule continues exactly where the encoded one was.
extension LearningRateSchedule: Codable {
    enum CodingKeys: String, CodingKey {
        case kind, warmup, plateau, restart
        case baseLearningRate = "base_learning_rate"
        case stepCount = "step_count"
        case learningRate = "learning_rate"
    }

    enum PlateauKeys: String, CodingKey {
        case best
        case badSteps = "bad_steps"
        case cooldownCounter = "cooldown_counter"
    }

    enum RestartKeys: String, CodingKey {
        case tCur = "t_cur"
        case tI = "t_i"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
        try container.encode(baseLearningRate, forKey: .baseLearningRate)
        try container.encodeIfPresent(warmup, forKey: .warmup)
        try container.encode(stepCount, forKey: .stepCount)
        try container.encode(learningRate, forKey: .learningRate)
        switch kind {
        case .reduceOnPlateau:
            var nested = container.nestedContainer(keyedBy: PlateauKeys.self, forKey: .plateau)
            // A metric of ±∞ can become the best; JSON has no number for it, so it goes as a string.
            if let best = plateau.best {
                if best.isFinite {
                    try nested.encode(best, forKey: .best)
                } else {
                    try nested.encode(best > 0 ? "inf" : "-inf", forKey: .best)
                }
            }
            try nested.encode(plateau.badSteps, forKey: .badSteps)
            try nested.encode(plateau.cooldownCounter, forKey: .cooldownCounter)
        case .cosineWarmRestarts:
            var nested = container.nestedContainer(keyedBy: RestartKeys.self, forKey: .restart)
            try nested.encode(restart.tCur, forKey: .tCur)
            try nested.encode(restart.tI, forKey: .tI)
        default:
            break
        }
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try container.decode(ScheduleKind.self, forKey: .kind)
        let base = try container.decode(Double.self, forKey: .baseLearningRate)
        let warmup = try container.decodeIfPresent(Warmup.self, forKey: .warmup)
        var schedule: LearningRateSchedule
        do {
            schedule = try LearningRateSchedule(kind: kind, baseLearningRate: base, warmup: warmup)
        } catch {
            throw DecodingError.dataCorruptedError(
                forKey: .kind, in: container, debugDescription: "invalid schedule: \(error)")
        }

        let stepCount = try container.decode(Int.self, forKey: .stepCount)
        guard stepCount >= 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .stepCount, in: container, debugDescription: "must be ≥ 0, got \(stepCount)")
        }
        let learningRate = try container.decode(Double.self, forKey: .learningRate)
        // Polynomial and linear (end_factor 0) schedules reach 0; nothing goes below or to ∞.
        guard learningRate.isFinite, learningRate >= 0 else {
            throw DecodingError.dataCorruptedError(
                forKey: .learningRate, in: container, debugDescription: "must be finite and ≥ 0, got \(learningRate)")
        }
        schedule.stepCount = stepCount
        schedule.learningRate = learningRate

        switch kind {
        case .reduceOnPlateau:
            let nested = try container.nestedContainer(keyedBy: PlateauKeys.self, forKey: .plateau)
            if let text = try? nested.decodeIfPresent(String.self, forKey: .best) {
                guard let best = ["inf": Double.infinity, "-inf": -Double.infinity][text] else {
                    throw DecodingError.dataCorruptedError(
                        forKey: .best, in: nested, debugDescription: "must be a number, \"inf\" or \"-inf\", got \(text)")
                }
                schedule.plateau.best = best
            } else {
                schedule.plateau.best = try nested.decodeIfPresent(Double.self, forKey: .best)
            }
            schedule.plateau.badSteps = try nested.decode(Int.self, forKey: .badSteps)
            schedule.plateau.cooldownCounter = try nested.decode(Int.self, forKey: .cooldownCounter)
            guard schedule.plateau.badSteps >= 0, schedule.plateau.cooldownCounter >= 0 else {
                throw DecodingError.dataCorruptedError(
                    forKey: .badSteps, in: nested, debugDescription: "plateau counters must be ≥ 0")
            }
        case .cosineWarmRestarts(let t0, let tMult, _):
            let nested = try container.nestedContainer(keyedBy: RestartKeys.self, forKey: .restart)
            let tCur = try nested.decode(Int.self, forKey: .tCur)
            let tI = try nested.decode(Int.self, forKey: .tI)
            // T_i is T_0·T_mult^n (saturated at Int.max, as the schedule saturates it), and T_cur lies within the period.
            var period = t0
            while period < tI, tMult > 1 {
                let (next, overflow) = period.multipliedReportingOverflow(by: tMult)
                period = overflow ? Int.max : next
            }
            guard period == tI, tCur >= 0, tCur < tI else {
                throw DecodingError.dataCorruptedError(
                    forKey: .tI, in: nested,
                    debugDescription: "t_cur \(tCur) and t_i \(tI) are not a position of periods \(t0)·\(tMult)^n")
            }
            schedule.restart = RestartState(tCur: tCur, tI: tI)
        default:
            break
        }
        self = schedule
    }
}
