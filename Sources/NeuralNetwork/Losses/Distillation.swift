import Foundation
import Tensors

/// Knowledge distillation (Hinton et al., 2015): the student learns from the teacher's softened
/// class probabilities as well as from the labels.
///
///     L = α·T²·KL(softmax(t/T) ‖ softmax(s/T))  +  (1−α)·hard(s, y)
///
/// with KL averaged over the batch (torch's `batchmean`) and `hard` the job's own loss (cross-entropy,
/// with its label smoothing and class weights). The T² keeps the soft term's gradient on the same
/// scale whatever the temperature:  dL/ds = α·T·(softmax(s/T) − softmax(t/T)) / N  +  (1−α)·d hard/ds.
public struct DistillationLoss: Sendable {
    public let temperature: Double
    /// The weight of the soft (teacher) term; 1 − α weights the labels.
    public let alpha: Double
    public let hard: LossFunction

    public init(temperature: Double, alpha: Double, hard: LossFunction) {
        precondition(temperature > 0 && (0...1).contains(alpha), "distillation: temperature > 0 and 0 ≤ alpha ≤ 1")
        self.temperature = temperature
        self.alpha = alpha
        self.hard = hard
    }

    /// Writes dL/d(student logits) into `gradient` and returns the batch loss. `teacherLogits` has the
    /// student's shape (N, C).
    public func evaluate(studentLogits: Tensor, teacherLogits: Tensor, classTargets: UnsafePointer<Int32>, gradient: Tensor) -> Double {
        precondition(studentLogits.rows == teacherLogits.rows && studentLogits.rowSize == teacherLogits.rowSize,
                     "distillation: teacher and student logits differ in shape")
        let hardLoss = hard.evaluate(predictions: studentLogits, classTargets: classTargets, valueTargets: nil, gradient: gradient)
        let n = studentLogits.rows
        let c = studentLogits.rowSize
        let inverseT = Float(1 / temperature)
        let hardScale = Float(1 - alpha)
        let softScale = Float(alpha * temperature) / Float(n)
        var divergence = 0.0
        for i in 0..<n {
            let s = studentLogits.pointer + i * c
            let t = teacherLogits.pointer + i * c
            let g = gradient.pointer + i * c
            let studentLogSum = Self.logSumExp(s, count: c, scale: inverseT)
            let teacherLogSum = Self.logSumExp(t, count: c, scale: inverseT)
            for k in 0..<c {
                let logStudent = Double(s[k] * inverseT) - studentLogSum
                let logTeacher = Double(t[k] * inverseT) - teacherLogSum
                let teacherProbability = exp(logTeacher)
                divergence += teacherProbability * (logTeacher - logStudent)
                g[k] = hardScale * g[k] + softScale * (Float(exp(logStudent)) - Float(teacherProbability))
            }
        }
        return alpha * temperature * temperature * divergence / Double(n) + (1 - alpha) * hardLoss
    }

    /// log Σ exp(scale·x), stably.
    private static func logSumExp(_ x: UnsafeMutablePointer<Float>, count: Int, scale: Float) -> Double {
        var largest = x[0] * scale
        for k in 1..<count { largest = max(largest, x[k] * scale) }
        var sum = 0.0
        for k in 0..<count { sum += exp(Double(x[k] * scale - largest)) }
        return log(sum) + Double(largest)
    }
}
