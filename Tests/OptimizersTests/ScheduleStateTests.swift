import Foundation
import Optimizers
import Testing

// Checkpoints of learning-rate schedules, and the behaviour schedules.json does not pin down:
// the other ReduceLROnPlateau modes, one-cycle's variants and its end, decaying LinearLR.

/// Encodes and decodes through JSON, as a checkpoint would.
func scheduleJSONRoundTrip(_ schedule: LearningRateSchedule) throws -> LearningRateSchedule {
    try JSONDecoder().decode(LearningRateSchedule.self, from: JSONEncoder().encode(schedule))
}

/// The schedule's JSON as a dictionary, to read or alter it.
func scheduleJSONObject(_ schedule: LearningRateSchedule) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: JSONEncoder().encode(schedule)) as? [String: Any])
}

func decodeSchedule(_ object: [String: Any]) throws -> LearningRateSchedule {
    try JSONDecoder().decode(LearningRateSchedule.self, from: JSONSerialization.data(withJSONObject: object))
}

@Suite("Schedule checkpoints")
struct ScheduleCheckpointTests {
    @Test(
        "a schedule saved mid-way and restored continues exactly like the original",
        arguments: ScheduleReferenceCase.typeNames.keys.sorted(), [nil, Warmup(steps: 6, startFactor: 0.2)])
    func continuesIdentically(scheduler: String, warmup: Warmup?) throws {
        for referenceCase in try ScheduleReferenceCase.cases(of: scheduler) {
            let metrics = referenceCase.metrics ?? Array(repeating: 0, count: referenceCase.learningRates.count)
            let total = metrics.count
            // Save inside the warm-up, and after it, in the plateau's counting, mid-period of the restarts.
            for saveAt in [3, 17, 26] {
                var original = try LearningRateSchedule(
                    kind: referenceCase.kind, baseLearningRate: referenceCase.baseLearningRate, warmup: warmup)
                for k in 0..<saveAt { original.step(metric: metrics[k]) }
                var restored = try scheduleJSONRoundTrip(original)
                #expect(restored == original, "\(referenceCase) saved at step \(saveAt)")
                #expect(restored.stepCount == saveAt)
                for k in saveAt..<total {
                    #expect(restored.learningRate == original.learningRate, "\(referenceCase) step \(k)")
                    original.step(metric: metrics[k])
                    restored.step(metric: metrics[k])
                }
                #expect(restored == original)
            }
        }
    }

    @Test("the checkpoint holds the step count, the learning rate and the plateau counters")
    func plateauCheckpointContents() throws {
        var schedule = try LearningRateSchedule(kind: .reduceOnPlateau(factor: 0.5, patience: 5, cooldown: 2), baseLearningRate: 0.1)
        for metric in [1.0, 2, 2] { schedule.step(metric: metric) }
        let object = try scheduleJSONObject(schedule)
        #expect(object["step_count"] as? Int == 3)
        #expect(object["learning_rate"] as? Double == 0.1)
        let plateau = try #require(object["plateau"] as? [String: Any])
        #expect(plateau["best"] as? Double == 1)
        #expect(plateau["bad_steps"] as? Int == 2)
        #expect(plateau["cooldown_counter"] as? Int == 0)
        #expect(object["restart"] == nil)
    }

    @Test("the checkpoint of warm restarts holds the position in the current period")
    func restartCheckpointContents() throws {
        var schedule = try LearningRateSchedule(kind: .cosineWarmRestarts(t0: 3, tMult: 2), baseLearningRate: 0.1)
        for _ in 0..<5 { schedule.step() }  // period 1: steps 0–2, period 2 (6 long): steps 3–8
        let restart = try #require(try scheduleJSONObject(schedule)["restart"] as? [String: Any])
        #expect(restart["t_cur"] as? Int == 2)
        #expect(restart["t_i"] as? Int == 6)
    }

    @Test("a plateau that has seen an infinite metric still makes a JSON checkpoint")
    func infiniteBest() throws {
        var schedule = try LearningRateSchedule(kind: .reduceOnPlateau(mode: .max), baseLearningRate: 0.1)
        schedule.step(metric: .infinity)
        let restored = try scheduleJSONRoundTrip(schedule)
        #expect(restored == schedule)
        let fresh = try scheduleJSONRoundTrip(try LearningRateSchedule(kind: .reduceOnPlateau(), baseLearningRate: 0.1))
        #expect(fresh == (try LearningRateSchedule(kind: .reduceOnPlateau(), baseLearningRate: 0.1)))
    }

    @Test("a checkpoint with an invalid configuration or impossible progress is refused")
    func refusesInvalidCheckpoints() throws {
        var plateau = try LearningRateSchedule(kind: .reduceOnPlateau(), baseLearningRate: 0.1)
        plateau.step(metric: 1)
        var restarts = try LearningRateSchedule(kind: .cosineWarmRestarts(t0: 3, tMult: 2), baseLearningRate: 0.1)
        restarts.step()
        let exponential = try scheduleJSONObject(try LearningRateSchedule(kind: .exponential(gamma: 0.9), baseLearningRate: 0.1))
        #expect(try decodeSchedule(exponential) == (try LearningRateSchedule(kind: .exponential(gamma: 0.9), baseLearningRate: 0.1)))

        func altered(_ object: [String: Any], _ change: (inout [String: Any]) -> Void) -> [String: Any] {
            var copy = object
            change(&copy)
            return copy
        }
        let invalid: [[String: Any]] = [
            altered(exponential) { $0["kind"] = ["exponential": ["gamma": -0.9]] },
            altered(exponential) { $0["base_learning_rate"] = 0 },
            altered(exponential) { $0["warmup"] = ["steps": 0, "startFactor": 0.5] },
            altered(exponential) { $0["step_count"] = -1 },
            altered(exponential) { $0["learning_rate"] = -0.1 },
            altered(try scheduleJSONObject(plateau)) { $0["plateau"] = ["bad_steps": -1, "cooldown_counter": 0] },
            altered(try scheduleJSONObject(plateau)) { $0["plateau"] = ["best": "huge", "bad_steps": 0, "cooldown_counter": 0] },
            altered(try scheduleJSONObject(restarts)) { $0["restart"] = ["t_cur": 3, "t_i": 3] },
            altered(try scheduleJSONObject(restarts)) { $0["restart"] = ["t_cur": 0, "t_i": 5] },
            altered(try scheduleJSONObject(restarts)) { $0["restart"] = nil },
        ]
        for object in invalid {
            #expect(throws: DecodingError.self, "\(object)") { try decodeSchedule(object) }
        }
    }
}

@Suite("Schedule behaviour beyond the reference")
struct ScheduleBehaviourTests {
    /// Learning rates of a plateau schedule fed `metrics`: one more than the metrics, the first is the base.
    func plateauRates(_ kind: ScheduleKind, _ metrics: [Double], base: Double = 0.1) throws -> [Double] {
        try scheduleLearningRates(kind, base: base, count: metrics.count + 1, metrics: metrics)
    }

    @Test("reduce-on-plateau waits `cooldown` steps after a reduction before counting again")
    func cooldown() throws {
        let rates = try plateauRates(.reduceOnPlateau(factor: 0.5, patience: 0, cooldown: 2), Array(repeating: 1, count: 8))
        #expect(rates == [0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125])
    }

    @Test("in max mode with an absolute threshold an improvement must exceed the best by the threshold")
    func maxModeAbsoluteThreshold() throws {
        let kind = ScheduleKind.reduceOnPlateau(mode: .max, factor: 0.5, patience: 0, threshold: 0.5, thresholdMode: .abs)
        #expect(try plateauRates(kind, [1, 1.4, 1.6, 1.6]) == [0.1, 0.1, 0.05, 0.05, 0.025])
    }

    @Test("in max mode with a relative threshold an improvement must exceed the best by threshold·best")
    func maxModeRelativeThreshold() throws {
        let kind = ScheduleKind.reduceOnPlateau(mode: .max, factor: 0.5, patience: 0, threshold: 0.1)
        // 1.05 < 1·1.1: no improvement; 1.2 > 1.1: improvement; 1.3 < 1.2·1.1: no improvement.
        #expect(try plateauRates(kind, [1, 1.05, 1.2, 1.3]) == [0.1, 0.1, 0.05, 0.05, 0.025])
    }

    @Test("in min mode with an absolute threshold a decrease must exceed the threshold")
    func minModeAbsoluteThreshold() throws {
        let kind = ScheduleKind.reduceOnPlateau(factor: 0.5, patience: 1, threshold: 0.1, thresholdMode: .abs)
        // 0.95 and 0.91 are within 0.1 of 1: two bad steps > patience 1; 0.85 beats 1 − 0.1.
        #expect(try plateauRates(kind, [1, 0.95, 0.91, 0.85, 0.8]) == [0.1, 0.1, 0.1, 0.05, 0.05, 0.05])
    }

    @Test("reduce-on-plateau never goes below min_lr, and skips a decay smaller than eps")
    func floorAndEps() throws {
        let floor = try plateauRates(.reduceOnPlateau(factor: 0.1, patience: 0, minLr: 0.002), [1, 1, 1, 1])
        #expect(floor == [0.1, 0.1, 0.010000000000000002, 0.002, 0.002])
        let tiny = try plateauRates(.reduceOnPlateau(factor: 0.5, patience: 0), [1, 1, 1], base: 1.5e-8)
        #expect(tiny == [1.5e-8, 1.5e-8, 1.5e-8, 1.5e-8])
    }

    @Test("a NaN metric counts as no improvement, as in torch")
    func nanMetric() throws {
        #expect(try plateauRates(.reduceOnPlateau(factor: 0.5, patience: 0), [1, .nan, 0.5]) == [0.1, 0.1, 0.05, 0.05])
    }

    @Test("reduce-on-plateau without a metric stops the process")
    func missingMetric() async {
        await #expect(processExitsWith: .failure) {
            var schedule = try! LearningRateSchedule(kind: .reduceOnPlateau(), baseLearningRate: 0.1)
            schedule.step()
        }
    }

    @Test("three-phase one-cycle rises to max_lr, falls back to max_lr/div_factor, then anneals to its end")
    func threePhaseOneCycle() throws {
        for strategy in ScheduleKind.AnnealStrategy.allCases {
            let kind = ScheduleKind.oneCycle(maxLr: 1, totalSteps: 100, pctStart: 0.25, annealStrategy: strategy, threePhase: true)
            let rates = try scheduleLearningRates(kind, base: 0.1, count: 100)
            // Phase ends: 0.25·100 − 1 = 24, 2·0.25·100 − 2 = 48, 99.
            // Exact only up to rounding: cos anneals as end + (start − end)/2·(cos + 1), linear as (end − start)·pct + start.
            #expect(abs(rates[0] - 0.04) <= 1e-15)
            #expect(abs(rates[24] - 1) <= 1e-15)
            #expect(abs(rates[48] - 0.04) <= 1e-15)
            #expect(abs(rates[99] - 4e-6) <= 1e-9 * 4e-6)
            #expect(rates[0..<24].allSatisfy { $0 < 1 } && rates[24..<48].allSatisfy { $0 > 0.04 - 1e-15 })
            #expect(zip(rates[49...], rates[48...]).allSatisfy { $0 < $1 })
            if strategy == .linear {
                #expect(abs(rates[12] - 0.52) <= 1e-15)  // halfway up: 0.04 + (1 − 0.04)/2
            }
        }
    }

    @Test("one-cycle stays at its final learning rate past total_steps and never goes negative")
    func oneCycleEnd() throws {
        for strategy in ScheduleKind.AnnealStrategy.allCases {
            let kind = ScheduleKind.oneCycle(maxLr: 0.5, totalSteps: 40, annealStrategy: strategy)
            let rates = try scheduleLearningRates(kind, base: 0.1, count: 60)
            let end = 0.5 / 25 / 1e4
            #expect(abs(rates[39] - end) <= 1e-9 * end)
            #expect(rates[40...].allSatisfy { $0 == end })
            #expect(rates.allSatisfy { $0 > 0 })
        }
    }

    @Test("a decaying linear schedule reaches end_factor·lr after total_iters and stays there")
    func linearDecay() throws {
        let rates = try scheduleLearningRates(.linear(startFactor: 1, endFactor: 0, totalIters: 4), base: 0.2, count: 7)
        let expected = [0.2, 0.15, 0.1, 0.05, 0, 0, 0]
        for (rate, value) in zip(rates, expected) { #expect(abs(rate - value) <= 1e-15) }
        #expect(rates[4...].allSatisfy { $0 == 0 })
    }

    @Test("warm restarts with t_mult 1 restart every t_0 steps at the base learning rate")
    func periodicRestarts() throws {
        let rates = try scheduleLearningRates(.cosineWarmRestarts(t0: 5, etaMin: 0.01), base: 0.1, count: 20)
        for k in 0..<5 {
            #expect(rates[k] == rates[k + 5] && rates[k] == rates[k + 10], "step \(k)")
        }
        #expect(abs(rates[0] - 0.1) <= 1e-16)
    }

    @Test("cosine annealing reaches eta_min at t_max and follows the cosine back up, as torch does")
    func cosineBeyondTMax() throws {
        let rates = try scheduleLearningRates(.cosine(tMax: 10, etaMin: 0.01), base: 0.1, count: 21)
        for k in 0...20 {
            let closedForm = 0.01 + (0.1 - 0.01) * (1 + cos(Double.pi * Double(k) / 10)) / 2
            #expect(abs(rates[k] - closedForm) <= 1e-12 * closedForm, "step \(k)")
        }
    }

    @Test("step counts every scheduler step, warm-up included")
    func stepCount() throws {
        var schedule = try LearningRateSchedule(kind: .exponential(gamma: 0.5), baseLearningRate: 1, warmup: Warmup(steps: 2))
        #expect(schedule.stepCount == 0)
        for _ in 0..<5 { schedule.step() }
        #expect(schedule.stepCount == 5)
        #expect(schedule.learningRate == 0.125)  // 3 steps of the schedule after the warm-up
    }
}
