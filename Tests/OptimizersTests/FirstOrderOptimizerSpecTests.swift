import Foundation
import Optimizers
import Tensors
import Testing

@Suite("FirstOrderOptimizerSpec")
struct FirstOrderOptimizerSpecTests {
    /// One spec of every type, with torch's defaults.
    static let defaults: [FirstOrderOptimizerSpec] = [
        .sgd(SGDHyperparameters()), .adam(AdamHyperparameters()), .adamw(AdamWHyperparameters()),
        .adagrad(AdagradHyperparameters()), .rmsprop(RMSpropHyperparameters()), .nadam(NAdamHyperparameters()),
        .adadelta(AdadeltaHyperparameters()),
    ]

    @Test("each case is named by the spec's optimizer.type and carries the default learning rate")
    func namesAndLearningRates() {
        #expect(Self.defaults.map(\.typeName) == FirstOrderOptimizerSpec.typeNames)
        #expect(Self.defaults.map(\.typeName) == ["sgd", "adam", "adamw", "adagrad", "rmsprop", "nadam", "adadelta"])
        #expect(Self.defaults.map(\.learningRate) == [0.001, 0.001, 0.001, 0.01, 0.01, 0.002, 1.0])
        #expect(Self.defaults.allSatisfy { $0.problems.isEmpty })
    }

    @Test("makeOptimizer builds the optimizer of the case, with its learning rate and no state")
    func makesEachType() throws {
        for spec in Self.defaults {
            let parameter = Parameter(name: "w", value: Tensor(shape: [2], values: [1, -1]), isWeight: true)
            let optimizer = try spec.makeOptimizer(parameters: [parameter])
            let expectedType: any Optimizer.Type = switch spec {
            case .sgd: SGD.self
            case .adam: Adam.self
            case .adamw: AdamW.self
            case .adagrad: Adagrad.self
            case .rmsprop: RMSprop.self
            case .nadam: NAdam.self
            case .adadelta: Adadelta.self
            }
            #expect(type(of: optimizer) == expectedType, "\(spec.typeName)")
            #expect(optimizer.learningRate == spec.learningRate, "\(spec.typeName)")
            #expect(optimizer.parameters.count == 1 && optimizer.parameters[0] === parameter)
            #expect(optimizer.stateTensors().isEmpty, "\(spec.typeName)")
            parameter.gradient.fill(0.5)
            optimizer.step()
            #expect(parameter.value[0] < 1 && parameter.value[1] < -1, "\(spec.typeName) steps against the gradient")
        }
    }

    @Test("the spec's optimizers follow torch's trajectories like the optimizers made directly")
    func referenceCases() throws {
        for testCase in try OptimizerCase.all() {
            let spec: FirstOrderOptimizerSpec
            switch testCase.optimizer {
            case "sgd": spec = .sgd(try testCase.decodeHyperparameters(as: SGDHyperparameters.self))
            case "adam": spec = .adam(try testCase.decodeHyperparameters(as: AdamHyperparameters.self))
            case "adamw": spec = .adamw(try testCase.decodeHyperparameters(as: AdamWHyperparameters.self))
            case "adagrad": spec = .adagrad(try testCase.decodeHyperparameters(as: AdagradHyperparameters.self))
            case "rmsprop": spec = .rmsprop(try testCase.decodeHyperparameters(as: RMSpropHyperparameters.self))
            case "nadam": spec = .nadam(try testCase.decodeHyperparameters(as: NAdamHyperparameters.self))
            case "adadelta": spec = .adadelta(try testCase.decodeHyperparameters(as: AdadeltaHyperparameters.self))
            default: continue  // second-order: not first-order specs
            }
            #expect(spec.typeName == testCase.optimizer)
            let trajectory = try runTrajectory(of: testCase) { try spec.makeOptimizer(parameters: $0) }
            let error = TrajectoryError(trajectory, testCase.trajectory)
            #expect(error.isWithinTolerance, "\(testCase): \(error)")
        }
    }

    @Test("problems are the hyperparameters' own, naming the spec's fields")
    func problems() {
        #expect(FirstOrderOptimizerSpec.rmsprop(RMSpropHyperparameters(lr: -1, alpha: 2)).problems.map(\.field) == ["lr", "alpha"])
        #expect(FirstOrderOptimizerSpec.nadam(NAdamHyperparameters(momentumDecay: -1)).problems
            == [OptimizerError(field: "momentum_decay", message: "must be ≥ 0, got -1.0")])
        #expect(FirstOrderOptimizerSpec.sgd(SGDHyperparameters(nesterov: true)).problems.map(\.field) == ["nesterov"])
        #expect(FirstOrderOptimizerSpec.adadelta(AdadeltaHyperparameters(rho: 1.5)).problems.map(\.field) == ["rho"])
    }

    @Test("makeOptimizer throws the first problem, or a parameter listed twice")
    func makeOptimizerThrows() {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        #expect(throws: OptimizerError(field: "initial_accumulator_value", message: "must be ≥ 0, got -1.0")) {
            try FirstOrderOptimizerSpec.adagrad(AdagradHyperparameters(initialAccumulatorValue: -1))
                .makeOptimizer(parameters: [parameter])
        }
        #expect(throws: OptimizerError(field: "betas[0]", message: "must be in [0, 1), got 1.0")) {
            try FirstOrderOptimizerSpec.adamw(AdamWHyperparameters(beta1: 1)).makeOptimizer(parameters: [parameter])
        }
        for spec in Self.defaults {
            #expect(throws: OptimizerError(field: "parameters", message: "lists parameter 1 (w) more than once"), "\(spec.typeName)") {
                try spec.makeOptimizer(parameters: [parameter, parameter])
            }
        }
    }

    @Test("specs compare by type and hyperparameters")
    func equality() {
        #expect(FirstOrderOptimizerSpec.adam(AdamHyperparameters()) != .adamw(AdamWHyperparameters(weightDecay: 0)))
        #expect(FirstOrderOptimizerSpec.nadam(NAdamHyperparameters(lr: 0.02)) == .nadam(NAdamHyperparameters(lr: 0.02)))
        #expect(FirstOrderOptimizerSpec.nadam(NAdamHyperparameters(lr: 0.02)) != .nadam(NAdamHyperparameters()))
    }
}
