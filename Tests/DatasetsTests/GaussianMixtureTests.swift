import Datasets
import Foundation
import Testing

@Suite("gaussian_mixture")
struct GaussianMixtureTests {
    @Test("8 Gaussians of σ = noise on a circle of radius 2; the class is the mode")
    func geometry() {
        let dataset = BuiltinDataset.gaussian_mixture.generate(BuiltinDatasetOptions(samples: 8000, noise: 0.05, seed: 4))
        #expect(BuiltinDataset.gaussian_mixture.fixedClassCount == 8)
        #expect(BuiltinDataset.gaussian_mixture.sampleShape == [2])
        #expect(dataset.rows == 8000 && dataset.featureCount == 2 && dataset.sampleShape == [2])
        #expect(dataset.classes == (0..<8).map(String.init))
        for mode in 0..<8 {
            let rows = dataset.classIndices.indices.filter { dataset.classIndices[$0] == Int32(mode) }
            #expect(rows.count == 1000)
            let center = GaussianMixture.center(mode)
            #expect(abs(hypot(center.x, center.y) - 2) < 1e-12)
            let dx = rows.map { Double(dataset.features[2 * $0]) - center.x }
            let dy = rows.map { Double(dataset.features[2 * $0 + 1]) - center.y }
            let meanX = dx.reduce(0, +) / 1000, meanY = dy.reduce(0, +) / 1000
            let std = ((dx.map { $0 * $0 }.reduce(0, +) + dy.map { $0 * $0 }.reduce(0, +)) / 2000).squareRoot()
            #expect(abs(meanX) < 0.01 && abs(meanY) < 0.01, "mode \(mode): mean offset (\(meanX), \(meanY))")
            #expect(abs(std - 0.05) < 0.005, "mode \(mode): σ \(std)")
        }
        #expect(GaussianMixture.center(0) == (x: 2, y: 0))
        #expect(abs(GaussianMixture.center(2).y - 2) < 1e-12)
    }

    @Test("noise 0 puts every point on its mode's centre")
    func noNoise() {
        let dataset = BuiltinDataset.gaussian_mixture.generate(BuiltinDatasetOptions(samples: 80, noise: 0))
        for row in 0..<80 {
            let center = GaussianMixture.center(Int(dataset.classIndices[row]))
            #expect(abs(Double(dataset.features[2 * row]) - center.x) < 1e-6 && abs(Double(dataset.features[2 * row + 1]) - center.y) < 1e-6)
        }
    }
}
