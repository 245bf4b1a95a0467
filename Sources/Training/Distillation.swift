import Datasets
import NeuralNetwork
import Tensors

/// A teacher's part in training a student: its logits on each batch, and the loss that mixes them
/// with the labels (`DistillationLoss`).
///
/// The batch reaches the student standardized with the student's statistics; the teacher learned on
/// its own, so each feature is mapped back onto the teacher's scale first:
/// x_teacher = (x·σ_s + μ_s − μ_t) / σ_t (one multiply-add per value, no allocation per batch).
public final class Distillation {
    public let teacher: Network
    public let loss: DistillationLoss
    private let scale: [Float]?
    private let shift: [Float]?
    private var teacherInput: Tensor?

    public init(teacher: TrainedModel, student: Standardization?, spec: DistillationSpec, hardLoss: LossFunction) {
        self.teacher = teacher.network
        loss = DistillationLoss(temperature: spec.temperature, alpha: spec.alpha, hard: hardLoss)
        let features = teacher.inputCount
        let studentMean = student?.mean ?? [Float](repeating: 0, count: features)
        let studentStd = student?.std ?? [Float](repeating: 1, count: features)
        let teacherMean = teacher.standardization?.mean ?? [Float](repeating: 0, count: features)
        let teacherStd = teacher.standardization?.std ?? [Float](repeating: 1, count: features)
        if studentMean == teacherMean && studentStd == teacherStd {
            scale = nil
            shift = nil
        } else {
            scale = (0..<features).map { studentStd[$0] / teacherStd[$0] }
            shift = (0..<features).map { (studentMean[$0] - teacherMean[$0]) / teacherStd[$0] }
        }
    }

    /// The distillation loss of a batch whose student logits are `studentLogits`; writes dL/d(logits) into `gradient`.
    func evaluate(studentLogits: Tensor, input: Tensor, classTargets: UnsafePointer<Int32>, gradient: Tensor) -> Double {
        var x = input
        if let scale, let shift {
            let mapped = ensureTensor(&teacherInput, batchSize: input.rows, sampleShape: teacher.inputShape)
            let width = scale.count
            for row in 0..<input.rows {
                let source = input.pointer + row * width, target = mapped.pointer + row * width
                for j in 0..<width { target[j] = source[j] * scale[j] + shift[j] }
            }
            x = mapped
        }
        let teacherLogits = teacher.forward(x, isTraining: false)
        return loss.evaluate(studentLogits: studentLogits, teacherLogits: teacherLogits, classTargets: classTargets, gradient: gradient)
    }
}

extension Distillation {
    /// Why `teacher` cannot teach a student of this input shape and output width; nil when it can.
    public static func mismatch(teacher: TrainedModel, studentInputShape: [Int], studentOutputs: Int?) -> String? {
        if teacher.inputCount != studentInputShape.reduce(1, *) {
            return "takes \(teacher.network.inputShape) inputs; this model takes \(studentInputShape)"
        }
        let teacherOutputs = teacher.network.outputShape.reduce(1, *)
        if let studentOutputs, teacherOutputs != studentOutputs {
            return "has \(teacherOutputs) outputs; this model has \(studentOutputs)"
        }
        if teacher.task != .classification || !teacher.loss.usesClassTargets {
            return "is not a cross-entropy classifier, so it has no class probabilities to teach"
        }
        return nil
    }
}

extension Trainer {
    /// Teaches this trainer's network with `teacher` as the spec's `distillation` says.
    public func distill(from teacher: TrainedModel) throws {
        guard let spec = spec.distillation else { return }
        if let problem = Distillation.mismatch(teacher: teacher, studentInputShape: network.inputShape,
                                               studentOutputs: network.outputShape.reduce(1, *)) {
            throw TrainingError.invalidSpec("distillation.teacher_job: the teacher's model \(problem)")
        }
        distillation = Distillation(teacher: teacher, student: data.standardization, spec: spec, hardLoss: loss)
    }
}

extension ModelSpec {
    /// Values per sample the model outputs, when its shapes check.
    public var outputCount: Int? {
        guard let inputShape else { return nil }
        return summarize(inputShape: inputShape, diagnostics: SpecDiagnostics())?.last?.outputShape.reduce(1, *)
    }
}
