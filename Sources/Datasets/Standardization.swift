/// Per-feature shift and scale to mean 0 and standard deviation 1: `(x - mean) / std`.
///
/// Fit on the training rows only, then apply the same numbers to every split and to prediction
/// inputs, so no statistic of validation or test data leaks into training.
public struct Standardization: Codable, Sendable, Equatable {
    public var mean: [Float]
    public var std: [Float]

    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == std.count, "\(mean.count) means for \(std.count) deviations")
        self.mean = mean
        self.std = std
    }

    /// Per-feature mean and population standard deviation over `rows` of `dataset`.
    ///
    /// Accumulates in Double, two passes (mean, then squared deviations), for accuracy. A constant
    /// feature gets std 1, so it maps to 0 instead of dividing by zero. No rows: the identity.
    public static func fit(_ dataset: TabularDataset, rows: [Int]) -> Standardization {
        let width = dataset.featureCount
        guard !rows.isEmpty else {
            return Standardization(mean: Array(repeating: 0, count: width), std: Array(repeating: 1, count: width))
        }
        var sum = [Double](repeating: 0, count: width)
        var minimum = [Float](repeating: .infinity, count: width)
        var maximum = [Float](repeating: -.infinity, count: width)
        dataset.features.withUnsafeBufferPointer { features in
            for row in rows {
                for feature in 0..<width {
                    let value = features[row * width + feature]
                    sum[feature] += Double(value)
                    minimum[feature] = min(minimum[feature], value)
                    maximum[feature] = max(maximum[feature], value)
                }
            }
        }
        let mean = sum.map { $0 / Double(rows.count) }
        var squaredDeviations = [Double](repeating: 0, count: width)
        dataset.features.withUnsafeBufferPointer { features in
            for row in rows {
                for feature in 0..<width {
                    let deviation = Double(features[row * width + feature]) - mean[feature]
                    squaredDeviations[feature] += deviation * deviation
                }
            }
        }
        var standardization = Standardization(mean: mean.map { Float($0) }, std: [Float](repeating: 1, count: width))
        for feature in 0..<width {
            let std = Float((squaredDeviations[feature] / Double(rows.count)).squareRoot())
            if minimum[feature] == maximum[feature] {
                // Exactly the value itself, so (x - mean) is exactly 0.
                standardization.mean[feature] = minimum[feature]
                standardization.std[feature] = 1
            } else {
                // A spread too small for Float would turn the division into infinities.
                standardization.std[feature] = std >= .leastNormalMagnitude ? std : 1
            }
        }
        return standardization
    }

    /// Standardizes row-major `features` (`rows × featureCount`) in place.
    public func apply(to features: inout [Float], featureCount: Int) {
        features.withUnsafeMutableBufferPointer { apply(to: $0, featureCount: featureCount) }
    }

    /// Standardizes row-major `values` (`rows × featureCount`) in place.
    public func apply(to values: UnsafeMutableBufferPointer<Float>, featureCount: Int) {
        precondition(featureCount == mean.count, "fitted on \(mean.count) features, applied to \(featureCount)")
        precondition(featureCount == 0 || values.count % featureCount == 0, "\(values.count) values are not whole rows of \(featureCount)")
        guard featureCount > 0 else { return }
        mean.withUnsafeBufferPointer { mean in
            std.withUnsafeBufferPointer { std in
                var index = 0
                while index < values.count {
                    for feature in 0..<featureCount {
                        values[index + feature] = (values[index + feature] - mean[feature]) / std[feature]
                    }
                    index += featureCount
                }
            }
        }
    }
}
