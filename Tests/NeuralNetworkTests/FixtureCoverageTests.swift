import ReferenceFixtures
import Testing

/// Reference cases whose engine code is not written yet. A case of any other kind that no test covers
/// fails `everyFixtureCaseIsCoveredOrListed`, so a new fixture never goes silently unchecked; when a
/// layer or loss lands, move it from here to its tests.
let layersNotCoveredYet: Set<String> = []
let lossesNotCoveredYet: Set<String> = []

@Suite("Reference fixture coverage")
struct FixtureCoverageTests {
    @Test("every fixture case is checked by a test or listed as deliberately not covered yet")
    func everyFixtureCaseIsCoveredOrListed() throws {
        // Each of these has its own suite comparing every case of its kind (Conv2DTests, PoolingTests,
        // NormalizationTests, RecurrentTests, EmbeddingTests, ChannelShuffleTests).
        let coveredLayers = Set(["linear"] + fixtureActivations.map(\.rawValue) + [
            "conv2d", "maxpool2d", "avgpool2d", "batchnorm1d", "batchnorm2d", "layernorm", "lstm", "gru", "embedding", "channel_shuffle",
        ])
        for (file, key, covered, notYet) in [
            ("layers", "layer", coveredLayers, layersNotCoveredYet),
            ("losses", "loss", coveredLosses.union(["distillation"]), lossesNotCoveredYet),  // distillation: DistillationLossTests
        ] {
            let kinds = try ReferenceFixtures.cases(file).map { $0.string(key) ?? "?" }
            let unknown = Set(kinds).subtracting(covered).subtracting(notYet)
            #expect(unknown.isEmpty, "\(file).json has cases no test covers: \(unknown.sorted())")
            var skipped: [String: Int] = [:]
            for kind in kinds where notYet.contains(kind) { skipped[kind, default: 0] += 1 }
            let checked = kinds.filter(covered.contains).count
            let list = skipped.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
            print("[coverage] \(file).json: \(checked) of \(kinds.count) cases checked; not covered yet: \(list)")
        }
    }
}
