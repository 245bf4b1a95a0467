import Compression
import ReferenceFixtures
import Tensors
import Testing

@Suite("Pruning masks")
struct PruningMaskTests {
    /// The pruning.json cases of one torch method; fails the test when there are none.
    func fixtureCases(_ method: String) throws -> [[String: Any]] {
        let cases = try ReferenceFixtures.cases("pruning").filter { $0.string("method") == method }
        try #require(!cases.isEmpty, "pruning.json has no \(method) case")
        return cases
    }

    // MARK: Against torch.nn.utils.prune

    @Test("l1 unstructured pruning gives torch's masks exactly")
    func l1UnstructuredMatchesTorch() throws {
        for fixture in try fixtureCases("l1_unstructured") {
            let weights = try fixture.tensor("weights").floats
            let amount = try #require(fixture.double("amount"))
            let mask = PruningMasks.unstructured(importance: weights.map { abs($0) }, amount: amount, existing: nil)
            #expect(mask == (try fixture.tensor("mask").floats), "amount \(amount)")
            #expect(PruningMasks.l1Unstructured(weights: weights, amount: amount, existing: nil) == mask)
        }
    }

    @Test("pruning 20% and then 20% of the rest gives torch's iterative mask")
    func iterativeL1MatchesTorch() throws {
        for fixture in try fixtureCases("l1_unstructured_iterative") {
            let weights = try fixture.tensor("weights").floats
            let amounts = try #require(fixture["amounts"] as? [Double])
            var mask: [Float]? = nil
            for amount in amounts {
                mask = PruningMasks.l1Unstructured(weights: weights, amount: amount, existing: mask)
            }
            #expect(mask == (try fixture.tensor("mask").floats))
        }
    }

    @Test("L2 structured pruning along dim 0 gives torch's masks exactly")
    func lnStructuredMatchesTorch() throws {
        for fixture in try fixtureCases("ln_structured") {
            try #require(fixture.int("dim") == 0, "only dim 0 is supported")
            let weights = try fixture.tensor("weights")
            let amount = try #require(fixture.double("amount"))
            let norm = try #require(fixture.double("n"))
            let mask = PruningMasks.structured(importance: weights.floats, shape: weights.shape, amount: amount,
                                               norm: norm, existing: nil)
            #expect(mask == (try fixture.tensor("mask").floats), "amount \(amount)")
        }
    }

    @Test("global L1 pruning sets one threshold across tensors as torch does")
    func globalL1MatchesTorch() throws {
        for fixture in try fixtureCases("global_l1_unstructured") {
            let tensors = try #require(fixture["tensors"] as? [Any]).map { try FixtureTensor($0) }
            let expected = try #require(fixture["masks"] as? [Any]).map { try FixtureTensor($0).floats }
            let amount = try #require(fixture.double("amount"))
            let masks = PruningMasks.global(importances: tensors.map { $0.floats.map { abs($0) } }, amount: amount,
                                            existing: tensors.map { _ in nil })
            #expect(masks == expected)
            let withoutExisting = PruningMasks.global(importances: tensors.map { $0.floats.map { abs($0) } },
                                                      amount: amount, existing: [])
            #expect(withoutExisting == expected, "an empty existing list means nothing pruned yet")
        }
    }

    // MARK: Counting and composition

    @Test("the prune count rounds half to even like Python's round")
    func pruneCountRoundsHalfToEven() {
        #expect(PruningMasks.pruneCount(amount: 0.5, of: 5) == 2)    // 2.5 → 2
        #expect(PruningMasks.pruneCount(amount: 0.5, of: 7) == 4)    // 3.5 → 4
        #expect(PruningMasks.pruneCount(amount: 0.3, of: 5) == 2)    // 1.5 → 2
        #expect(PruningMasks.pruneCount(amount: 0.1, of: 25) == 2)   // 2.5 → 2
        #expect(PruningMasks.pruneCount(amount: 0.55, of: 30) == 16) // 16.5 → 16
        #expect(PruningMasks.pruneCount(amount: 0, of: 9) == 0)
        #expect(PruningMasks.pruneCount(amount: 1, of: 9) == 9)
    }

    @Test("an unstructured mask composes: pruned entries stay pruned, and the amount counts only live ones")
    func unstructuredComposes() {
        // Entry 0 is the most important but already pruned; it must stay 0.
        let importance: [Float] = [9, 1, 2, 3, 4, 5, 6, 7, 8, 0.5]
        var existing = [Float](repeating: 1, count: 10)
        existing[0] = 0
        existing[9] = 0
        // 8 alive, 0.25 · 8 = 2 more: the two smallest alive are entries 1 and 2.
        let mask = PruningMasks.unstructured(importance: importance, amount: 0.25, existing: existing)
        #expect(mask == [0, 0, 0, 1, 1, 1, 1, 1, 1, 0])
        #expect(PruningMasks.sparsity(of: mask) == 0.4)
        // Pruning nothing returns the existing mask unchanged.
        #expect(PruningMasks.unstructured(importance: importance, amount: 0, existing: existing) == existing)
    }

    @Test("structured pruning composes: dead channels stay dead and are not counted again")
    func structuredComposes() {
        // 4 channels of 3 values; channel norms 3, 6, 9, 12 (all entries equal).
        let importance: [Float] = [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4].map { $0 * Float(3).squareRoot() }
        let first = PruningMasks.structured(importance: importance, shape: [4, 3], amount: 0.25, existing: nil)
        #expect(first == [0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1])
        // 3 channels alive: round(0.5 · 3) = 2 → channels 1 and 2 go.
        let second = PruningMasks.structured(importance: importance, shape: [4, 3], amount: 0.5, existing: first)
        #expect(second == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1])

        // An unstructured hole in a channel lowers its masked norm: channel 3 keeps only one entry.
        var holes = [Float](repeating: 1, count: 12)
        holes[9] = 0
        holes[10] = 0
        let scored = PruningMasks.structured(importance: importance, shape: [4, 3], amount: 0.25, existing: holes)
        // Norms now 3, 6, 9 and 4 · √3 ≈ 6.9: still channel 0 the smallest; the holes survive.
        #expect(scored == [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 1])
    }

    @Test("structured pruning scores channels by the chosen norm")
    func structuredUsesTheNorm() {
        // Channel norms          L1    L2     L∞
        //   0: [3, 0, 0]          3     3      3
        //   1: [1.5, 1.5, 1.5]    4.5   2.60   1.5
        //   2: [2.2, -1, 0]       3.2   2.42   2.2
        // so each norm prunes a different channel (one of three: round(0.34 · 3) = 1).
        let importance: [Float] = [3, 0, 0, 1.5, 1.5, 1.5, 2.2, -1, 0]
        #expect(PruningMasks.structured(importance: importance, shape: [3, 3], amount: 0.34, norm: 1, existing: nil)
            == [0, 0, 0, 1, 1, 1, 1, 1, 1])
        #expect(PruningMasks.structured(importance: importance, shape: [3, 3], amount: 0.34, norm: 2, existing: nil)
            == [1, 1, 1, 1, 1, 1, 0, 0, 0])
        #expect(PruningMasks.structured(importance: importance, shape: [3, 3], amount: 0.34, norm: .infinity, existing: nil)
            == [1, 1, 1, 0, 0, 0, 1, 1, 1])
    }

    @Test("kept channels prune the lowest-scoring live channels and never revive dead ones")
    func keptChannelsPrunesAmongTheAlive() {
        let scores: [Float] = [5, 0.1, 3, 4, 1, 2]
        // round(0.5 · 6) = 3 → channels 1, 4 and 5.
        #expect(PruningMasks.keptChannels(scores: scores, amount: 0.5, alive: nil)
            == [true, false, true, true, false, false])
        // Channel 1 (lowest) already dead: of 5 alive, round(0.5 · 5) = 2 → channels 4 and 5, and channel 2 survives.
        let alive = [true, false, true, true, true, true]
        #expect(PruningMasks.keptChannels(scores: scores, amount: 0.5, alive: alive)
            == [true, false, true, true, false, false])
        #expect(PruningMasks.keptChannels(scores: scores, amount: 0, alive: alive) == alive)
    }

    @Test("global pruning composes with each tensor's existing mask")
    func globalComposes() {
        let importances: [[Float]] = [[1, 8, 3], [2, 7, 6, 0.5]]
        let existing: [[Float]?] = [[1, 1, 1], [1, 1, 1, 0]]
        // 6 alive; round(0.5 · 6) = 3 smallest alive: 1, 2, 3 (the pruned 0.5 does not count).
        let masks = PruningMasks.global(importances: importances, amount: 0.5, existing: existing)
        #expect(masks == [[0, 1, 0], [0, 1, 1, 0]])
    }

    @Test("random pruning removes exactly round-half-even(amount · live) live entries, reproducibly for a seed")
    func randomPruningCountsAndRepeats() {
        var existing = [Float](repeating: 1, count: 101)
        for i in stride(from: 0, to: 101, by: 3) { existing[i] = 0 }   // 34 pruned, 67 alive
        let alive = existing.filter { $0 != 0 }.count
        for amount in [0.0, 0.1, 0.5, 0.75, 1.0] {
            var generator = SeededGenerator(seed: 1, purpose: "prune")
            let mask = PruningMasks.random(count: 101, amount: amount, existing: existing, generator: &generator)
            let newlyPruned = zip(existing, mask).filter { $0 == 1 && $1 == 0 }.count
            #expect(newlyPruned == Int((amount * Double(alive)).rounded(.toNearestOrEven)), "amount \(amount)")
            #expect(zip(existing, mask).allSatisfy { $0 != 0 || $1 == 0 }, "pruned entries stay pruned")

            var sameGenerator = SeededGenerator(seed: 1, purpose: "prune")
            #expect(PruningMasks.random(count: 101, amount: amount, existing: existing, generator: &sameGenerator) == mask)
        }
        // 0.5 · 67 = 33.5 → 34 (even).
        var generator = SeededGenerator(seed: 1, purpose: "prune")
        let half = PruningMasks.random(count: 101, amount: 0.5, existing: existing, generator: &generator)
        #expect(half.filter { $0 == 0 }.count == 34 + 34)

        var other = SeededGenerator(seed: 2, purpose: "prune")
        #expect(PruningMasks.random(count: 101, amount: 0.5, existing: existing, generator: &other) != half,
                "another seed picks other entries")
    }

    @Test("random pruning picks every live entry about equally often")
    func randomPruningIsUniform() {
        var generator = SeededGenerator(seed: 3, purpose: "prune")
        var prunedCounts = [Int](repeating: 0, count: 10)
        let trials = 4000
        for _ in 0..<trials {
            let mask = PruningMasks.random(count: 10, amount: 0.3, existing: nil, generator: &generator)
            for i in 0..<10 where mask[i] == 0 { prunedCounts[i] += 1 }
        }
        // Each entry is pruned with probability 0.3: 1200 ± ~29 (1 σ); allow 5 σ.
        for count in prunedCounts { #expect(abs(count - 1200) < 150, "\(prunedCounts)") }
    }

    @Test("sparsity is the fraction of zeros")
    func sparsityCountsZeros() {
        #expect(PruningMasks.sparsity(of: []) == 0)
        #expect(PruningMasks.sparsity(of: [1, 0, 1, 0]) == 0.5)
        #expect(PruningMasks.sparsity(of: [0, 0, 0]) == 1)
    }
}
