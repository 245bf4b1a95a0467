import Foundation
import Tensors

/// The training objective, with torch's definitions and mean reduction.
public enum LossSpec: Sendable, Equatable {
    /// Softmax cross-entropy over class indices; `classWeights` nil means all 1.
    case crossEntropy(labelSmoothing: Double, classWeights: ClassWeighting?)
    case mse
    case huber(delta: Double)
    case bceWithLogits

    public var name: String {
        switch self {
        case .crossEntropy: "cross_entropy"
        case .mse: "mse"
        case .huber: "huber"
        case .bceWithLogits: "bce_with_logits"
        }
    }

    /// Whether targets are class indices (otherwise real values with the output's shape).
    public var usesClassTargets: Bool {
        if case .crossEntropy = self { return true }
        return false
    }
}

public enum ClassWeighting: Sendable, Equatable {
    /// n_samples / (n_classes · count of the class), scikit-learn's "balanced".
    case balanced
    case explicit([Double])
}

/// A loss ready to evaluate: the spec with class weights resolved to numbers.
///
/// `evaluate` writes dL/d(prediction) into `gradient` (same shape as predictions) and returns the
/// batch loss. Shapes: predictions (N, C); class targets (N) or value targets (N, C).
public struct LossFunction: Sendable {
    public let spec: LossSpec
    public let classWeights: [Float]?

    public init(spec: LossSpec, classWeights: [Float]? = nil) {
        self.spec = spec
        self.classWeights = classWeights
    }

    public func evaluate(
        predictions: Tensor, classTargets: UnsafePointer<Int32>?, valueTargets: UnsafePointer<Float>?, gradient: Tensor
    ) -> Double {
        gradient.reshape(predictions.shape)
        let n = predictions.rows
        let c = predictions.rowSize
        let p = predictions.pointer
        let g = gradient.pointer
        switch spec {
        case .crossEntropy(let labelSmoothing, _):
            return crossEntropy(logits: p, targets: classTargets!, n: n, c: c, smoothing: labelSmoothing, gradient: g)
        case .mse:
            let t = valueTargets!
            let count = n * c
            var total = 0.0
            let scale = 2 / Float(count)
            for i in 0..<count {
                let d = p[i] - t[i]
                total += Double(d * d)
                g[i] = scale * d
            }
            return total / Double(count)
        case .huber(let delta):
            let t = valueTargets!
            let count = n * c
            let d = Float(delta)
            var total = 0.0
            for i in 0..<count {
                let r = p[i] - t[i]
                if abs(r) <= d {
                    total += Double(0.5 * r * r)
                    g[i] = r / Float(count)
                } else {
                    total += Double(d * (abs(r) - 0.5 * d))
                    g[i] = d * (r > 0 ? 1 : -1) / Float(count)
                }
            }
            return total / Double(count)
        case .bceWithLogits:
            let t = valueTargets!
            let count = n * c
            var total = 0.0
            for i in 0..<count {
                let x = p[i]
                // max(x, 0) − x·t + log(1 + e^(−|x|)), stable for large |x|
                total += Double(max(x, 0) - x * t[i] + log1pf(expf(-abs(x))))
                g[i] = (logistic(x) - t[i]) / Float(count)
            }
            return total / Double(count)
        }
    }

    /// Cross-entropy with label smoothing ε and class weights w, as torch computes it:
    ///   L = (1−ε)·Σᵢ wᵧᵢ·(−log pᵢᵧᵢ) / Σᵢ wᵧᵢ  +  ε/C · Σᵢ Σ_c w_c·(−log pᵢc) / Σᵢ wᵧᵢ
    /// with p = softmax(z) per row; dL/dz follows from ∂(−log pᵢc)/∂zᵢk = pᵢk − δck.
    private func crossEntropy(
        logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>, n: Int, c: Int, smoothing: Double,
        gradient g: UnsafeMutablePointer<Float>
    ) -> Double {
        let eps = smoothing
        var weightTotal = 0.0
        for i in 0..<n { weightTotal += Double(classWeights?[Int(targets[i])] ?? 1) }
        let sumOfWeights = classWeights.map { $0.reduce(0, +) } ?? Float(c)
        var total = 0.0
        for i in 0..<n {
            let z = logits + i * c
            let gi = g + i * c
            let y = Int(targets[i])
            var maxLogit = z[0]
            for k in 1..<c { maxLogit = max(maxLogit, z[k]) }
            var sumExp: Float = 0
            for k in 0..<c {
                let e = expf(z[k] - maxLogit)
                gi[k] = e
                sumExp += e
            }
            let logSumExp = log(Double(sumExp)) + Double(maxLogit)
            let wy = Double(classWeights?[y] ?? 1)
            // hard-target term
            total += (1 - eps) * wy * (logSumExp - Double(z[y]))
            var smoothTerm = 0.0
            if eps > 0 {
                for k in 0..<c { smoothTerm += Double(classWeights?[k] ?? 1) * (logSumExp - Double(z[k])) }
                total += eps / Double(c) * smoothTerm
            }
            let hardScale = Float((1 - eps) * wy / weightTotal)
            let smoothScale = Float(eps / Double(c) / weightTotal)
            let inverseSum = 1 / sumExp
            for k in 0..<c {
                let probability = gi[k] * inverseSum
                var grad = hardScale * (probability - (k == y ? 1 : 0))
                if eps > 0 { grad += smoothScale * (probability * sumOfWeights - (classWeights?[k] ?? 1)) }
                gi[k] = grad
            }
        }
        return total / weightTotal
    }
}

/// Row-wise softmax of logits (N, C) into `output`.
public func softmaxRows(_ logits: Tensor, into output: Tensor) {
    output.reshape(logits.shape)
    let c = logits.rowSize
    for i in 0..<logits.rows {
        let z = logits.pointer + i * c
        let p = output.pointer + i * c
        var maxLogit = z[0]
        for k in 1..<c { maxLogit = max(maxLogit, z[k]) }
        var sum: Float = 0
        for k in 0..<c { p[k] = expf(z[k] - maxLogit); sum += p[k] }
        for k in 0..<c { p[k] /= sum }
    }
}
