/// When gradual pruning prunes and to which sparsity: Zhu & Gupta's polynomial schedule
/// (“To prune, or not to prune”, 2017):
///
///     s_t = s_f + (s_i − s_f) · (1 − (t − t_0) / (t_n − t_0))^power     for t_0 ≤ t ≤ t_n
///
/// where `t` counts fine-tuning epochs, `s_i` is `initialSparsity`, `s_f` the target `finalSparsity`,
/// and pruning happens at `t_0`, `t_0 + frequency`, … and always at `t_n`. Sparsity rises fast
/// while many redundant weights remain and slowly near the end, where each weight matters more.
public struct PolynomialPruningSchedule: Sendable, Equatable {
    public var beginEpoch: Int
    public var endEpoch: Int
    public var frequency: Int
    public var initialSparsity: Double
    public var finalSparsity: Double
    public var power: Double

    public init(beginEpoch: Int, endEpoch: Int, frequency: Int = 1, initialSparsity: Double = 0,
                finalSparsity: Double, power: Double = 3) {
        precondition(endEpoch >= beginEpoch && frequency >= 1, "schedule: end_epoch ≥ begin_epoch and frequency ≥ 1")
        self.beginEpoch = beginEpoch
        self.endEpoch = endEpoch
        self.frequency = frequency
        self.initialSparsity = initialSparsity
        self.finalSparsity = finalSparsity
        self.power = power
    }

    /// The sparsity the schedule asks for at epoch `t` (clamped to the schedule's ends).
    public func sparsity(atEpoch t: Int) -> Double {
        if t <= beginEpoch { return endEpoch == beginEpoch ? finalSparsity : initialSparsity }
        if t >= endEpoch { return finalSparsity }
        let progress = Double(t - beginEpoch) / Double(endEpoch - beginEpoch)
        return finalSparsity + (initialSparsity - finalSparsity) * pow(1 - progress, power)
    }

    /// Whether the schedule prunes at epoch `t`: on its frequency grid between the ends, and at the end.
    public func prunes(atEpoch t: Int) -> Bool {
        guard t >= beginEpoch, t <= endEpoch else { return false }
        return t == endEpoch || (t - beginEpoch) % frequency == 0
    }

    /// The fraction of the *remaining* weights to prune at a step that goes from sparsity `current`
    /// to `target`: masks compose, so each step prunes among the weights still alive.
    public static func incrementalAmount(from current: Double, to target: Double) -> Double {
        guard target > current, current < 1 else { return 0 }
        return min(1, (target - current) / (1 - current))
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
