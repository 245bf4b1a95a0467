import Tensors

/// Pruning masks with `torch.nn.utils.prune` semantics: a mask is a `[Float]` the size of the tensor,
/// 1 where the entry is kept and 0 where it is pruned.
///
/// Masks compose: every method takes the `existing` mask (nil = nothing pruned yet), prunes only among
/// the entries (or channels) still alive, and returns the product of the old and the new mask, so
/// pruning 20 % and then 20 % again leaves 64 % of the weights, as torch's `PruningContainer` does.
/// The amount is always a fraction of what is still alive.
///
/// Ties in importance are broken by position (the earlier entry is pruned first) so masks are
/// reproducible; torch's `topk` leaves the order of ties unspecified.
public enum PruningMasks {
    /// torch's count: round(amount · n), half to even.
    public static func pruneCount(amount: Double, of n: Int) -> Int {
        precondition((0...1).contains(amount), "pruning amount must be in [0, 1], got \(amount)")
        return Int((amount * Double(n)).rounded(.toNearestOrEven))
    }

    /// torch.nn.utils.prune.l1_unstructured semantics, generalized to any importance score:
    /// among the entries still alive (existing mask 1, or all when `existing` is nil) prune the
    /// pruneCount(amount, of: alive) with the smallest importance; returns the composed mask (1 = kept, 0 = pruned).
    /// For torch's L1 criterion pass |w| as the importance (or call `l1Unstructured`).
    public static func unstructured(importance: [Float], amount: Double, existing: [Float]?) -> [Float] {
        var mask = existing ?? [Float](repeating: 1, count: importance.count)
        precondition(mask.count == importance.count, "mask has \(mask.count) entries, importance \(importance.count)")
        let alive = mask.indices.filter { mask[$0] != 0 }
        for index in smallest(pruneCount(amount: amount, of: alive.count), of: alive, scoredBy: importance) {
            mask[index] = 0
        }
        return mask
    }

    /// torch's l1_unstructured: `unstructured` with |w| as the importance.
    public static func l1Unstructured(weights: [Float], amount: Double, existing: [Float]?) -> [Float] {
        unstructured(importance: weights.map { abs($0) }, amount: amount, existing: existing)
    }

    /// torch's ln_structured(dim: 0, n: norm): each slice along dim 0 (an output unit / filter) is scored by the L_n norm of
    /// its importance values (the masked values, as torch scores the already-pruned weight); prunes
    /// pruneCount(amount, of: channels still alive) whole channels with the smallest norms; returns the composed
    /// full-size mask. `shape[0]` is the channel count; a channel is alive while any of its entries is.
    /// `norm` may be any p ≥ 1 or `.infinity` (max |x|).
    public static func structured(importance: [Float], shape: [Int], amount: Double, norm: Double = 2,
                                  existing: [Float]?) -> [Float] {
        let channels = shape.first ?? 1
        precondition(shape.reduce(1, *) == importance.count, "shape \(shape) does not hold \(importance.count) values")
        precondition(channels > 0 && norm > 0, "structured pruning needs at least one channel and a positive norm")
        var mask = existing ?? [Float](repeating: 1, count: importance.count)
        precondition(mask.count == importance.count, "mask has \(mask.count) entries, importance \(importance.count)")
        let width = importance.count / channels

        var norms = [Float](repeating: 0, count: channels)
        var alive = [Bool](repeating: false, count: channels)
        for channel in 0..<channels {
            // Double accumulation: channel norms of near-equal filters must order as torch's do.
            var total = 0.0
            for index in channel * width..<(channel + 1) * width where mask[index] != 0 {
                alive[channel] = true
                let magnitude = Double(abs(importance[index] * mask[index]))
                if norm == .infinity { total = max(total, magnitude) }
                else if norm == 1 { total += magnitude }
                else if norm == 2 { total += magnitude * magnitude }
                else { total += pow(magnitude, norm) }
            }
            norms[channel] = Float(norm == .infinity || norm == 1 ? total
                                   : norm == 2 ? total.squareRoot() : pow(total, 1 / norm))
        }

        let kept = keptChannels(scores: norms, amount: amount, alive: alive)
        for channel in 0..<channels where !kept[channel] {
            for index in channel * width..<(channel + 1) * width { mask[index] = 0 }
        }
        return mask
    }

    /// Per-channel scores → which channels to keep, for channel pruning that removes units: returns a keep flag per
    /// channel, pruning pruneCount(amount, of: alive) of the alive channels with the smallest score; channels already
    /// dead stay dead. (Used for global channel pruning too, with the scores of all layers concatenated.)
    public static func keptChannels(scores: [Float], amount: Double, alive: [Bool]?) -> [Bool] {
        var kept = alive ?? [Bool](repeating: true, count: scores.count)
        precondition(kept.count == scores.count, "\(kept.count) alive flags for \(scores.count) channel scores")
        let aliveChannels = kept.indices.filter { kept[$0] }
        for channel in smallest(pruneCount(amount: amount, of: aliveChannels.count), of: aliveChannels, scoredBy: scores) {
            kept[channel] = false
        }
        return kept
    }

    /// torch's global_unstructured: one threshold across all tensors: the pruneCount(amount, of: total alive) smallest
    /// importances over the concatenation are pruned; returns one composed mask per tensor.
    /// `existing` has one entry per tensor (nil = nothing pruned yet), or is empty when nothing is pruned anywhere.
    public static func global(importances: [[Float]], amount: Double, existing: [[Float]?]) -> [[Float]] {
        precondition(existing.isEmpty || existing.count == importances.count,
                     "\(existing.count) existing masks for \(importances.count) tensors")
        let concatenated = Array(importances.joined())
        let existingConcatenated: [Float]? = existing.allSatisfy({ $0 == nil }) ? nil
            : Array(importances.indices.map { existing[$0] ?? [Float](repeating: 1, count: importances[$0].count) }.joined())
        let mask = unstructured(importance: concatenated, amount: amount, existing: existingConcatenated)

        var masks: [[Float]] = []
        var offset = 0
        for importance in importances {
            masks.append(Array(mask[offset..<offset + importance.count]))
            offset += importance.count
        }
        return masks
    }

    /// torch's random_unstructured: prunes pruneCount(amount, of: alive) alive entries chosen uniformly with `generator`
    /// (a partial Fisher–Yates shuffle of the alive positions, so the same generator state gives the same mask).
    public static func random(count: Int, amount: Double, existing: [Float]?, generator: inout SeededGenerator) -> [Float] {
        var mask = existing ?? [Float](repeating: 1, count: count)
        precondition(mask.count == count, "mask has \(mask.count) entries, expected \(count)")
        var alive = mask.indices.filter { mask[$0] != 0 }
        let pruned = pruneCount(amount: amount, of: alive.count)
        for i in 0..<pruned {
            let j = i + Int(generator.next() % UInt64(alive.count - i))
            alive.swapAt(i, j)
            mask[alive[i]] = 0
        }
        return mask
    }

    /// The fraction of zeros in a mask (0 for an empty mask).
    public static func sparsity(of mask: [Float]) -> Double {
        guard !mask.isEmpty else { return 0 }
        return Double(mask.lazy.filter { $0 == 0 }.count) / Double(mask.count)
    }

    /// The `count` positions among `candidates` with the smallest scores, ties to the earlier position.
    /// NaN scores count as largest (never pruned first), as in torch's topk.
    private static func smallest(_ count: Int, of candidates: [Int], scoredBy scores: [Float]) -> ArraySlice<Int> {
        guard count > 0 else { return [] }
        func key(_ index: Int) -> Float { scores[index].isNaN ? .infinity : scores[index] }
        let ordered = candidates.sorted { key($0) < key($1) || (key($0) == key($1) && $0 < $1) }
        return ordered.prefix(count)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
