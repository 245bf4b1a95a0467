import Foundation
import NeuralNetwork
import ReferenceFixtures
import Tensors
import Testing

@Suite("DistillationLoss")
struct DistillationLossTests {
    private func evaluate(_ loss: DistillationLoss, student: [Float], teacher: [Float], shape: [Int], targets: [Int32]) -> (Double, Tensor) {
        let gradient = Tensor(shape: shape)
        let value = targets.withUnsafeBufferPointer {
            loss.evaluate(studentLogits: Tensor(shape: shape, values: student), teacherLogits: Tensor(shape: shape, values: teacher),
                          classTargets: $0.baseAddress!, gradient: gradient)
        }
        return (value, gradient)
    }

    @Test("distillation matches torch's value and student-logit gradient for every case of losses.json")
    func matchesTorch() throws {
        let cases = try ReferenceFixtures.cases("losses").filter { $0.string("loss") == "distillation" }
        #expect(cases.count >= 2)
        for fixture in cases {
            let config = fixture.object("config")
            let loss = DistillationLoss(temperature: try #require(config.double("temperature")), alpha: try #require(config.double("alpha")),
                                        hard: LossFunction(spec: .crossEntropy(labelSmoothing: 0, classWeights: nil)))
            let student = try fixture.tensor("logits")
            let teacher = try fixture.tensor("teacher_logits")
            let targets = try #require(fixture["targets"] as? [Int]).map(Int32.init)
            let (value, gradient) = evaluate(loss, student: student.floats, teacher: teacher.floats, shape: student.shape, targets: targets)
            let expected = try #require(fixture.double("value"))
            #expect(relativeError(value, expected) <= lossTolerance, "T=\(loss.temperature): value \(value) vs \(expected)")
            let gradientError = relativeMaxError(gradient.array, try fixture.tensor("logits_grad").data)
            #expect(gradientError <= lossTolerance, "T=\(loss.temperature): gradient relative error \(gradientError)")
            reportErrors("losses.json distillation T=\(loss.temperature) alpha=\(loss.alpha)", [("value", relativeError(value, expected)), ("gradient", gradientError)])
        }
    }

    @Test("the distillation gradient matches central differences of its value")
    func gradientCheck() {
        var generator = SeededGenerator(seed: 7, purpose: "test")
        let shape = [3, 5]
        let student = (0..<15).map { _ in generator.normal() }
        let teacher = (0..<15).map { _ in 2 * generator.normal() }
        let targets: [Int32] = [0, 4, 2]
        let loss = DistillationLoss(temperature: 3, alpha: 0.6, hard: LossFunction(spec: .crossEntropy(labelSmoothing: 0.1, classWeights: nil)))
        let (_, gradient) = evaluate(loss, student: student, teacher: teacher, shape: shape, targets: targets)
        let h: Float = 1e-2
        for index in 0..<15 {
            var plus = student, minus = student
            plus[index] += h
            minus[index] -= h
            let numeric = (evaluate(loss, student: plus, teacher: teacher, shape: shape, targets: targets).0
                - evaluate(loss, student: minus, teacher: teacher, shape: shape, targets: targets).0) / Double(2 * h)
            #expect(abs(numeric - Double(gradient[index])) < 2e-3, "logit \(index): numeric \(numeric) vs \(gradient[index])")
        }
    }

    @Test("with alpha 0 distillation is the hard loss, and a student equal to the teacher has no soft gradient")
    func limits() {
        let hard = LossFunction(spec: .crossEntropy(labelSmoothing: 0, classWeights: nil))
        let logits: [Float] = [1, -2, 0.5, 3, 0, -1]
        let (plain, plainGradient) = evaluate(DistillationLoss(temperature: 4, alpha: 0, hard: hard), student: logits,
                                              teacher: [9, 9, 9, -9, -9, -9], shape: [2, 3], targets: [2, 0])
        let reference = Tensor(shape: [2, 3])
        let expected = [Int32(2), 0].withUnsafeBufferPointer {
            hard.evaluate(predictions: Tensor(shape: [2, 3], values: logits), classTargets: $0.baseAddress, valueTargets: nil, gradient: reference)
        }
        #expect(abs(plain - expected) < 1e-9)
        #expect(plainGradient.array == reference.array)
        let (soft, softGradient) = evaluate(DistillationLoss(temperature: 2, alpha: 1, hard: hard), student: logits, teacher: logits,
                                            shape: [2, 3], targets: [2, 0])
        #expect(abs(soft) < 1e-9)
        #expect(softGradient.array.allSatisfy { abs($0) < 1e-7 })
    }
}
