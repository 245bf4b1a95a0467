import Foundation
import Optimizers
import Tensors
import Testing

@Suite("AdadeltaHyperparameters")
struct AdadeltaHyperparametersTests {
    @Test("the defaults are torch's and valid")
    func defaults() {
        let defaults = AdadeltaHyperparameters()
        #expect(defaults == AdadeltaHyperparameters(lr: 1.0, rho: 0.9, eps: 1e-6, weightDecay: 0))
        #expect(defaults.problems.isEmpty)
    }

    @Test("a learning rate that is not positive is refused with the field and the value")
    func learningRate() {
        #expect(throws: OptimizerError(field: "lr", message: "must be > 0, got -1.0")) {
            try AdadeltaHyperparameters(lr: -1).validate()
        }
        #expect(AdadeltaHyperparameters(lr: 0).problems.map(\.field) == ["lr"])
        #expect(AdadeltaHyperparameters(lr: .infinity).problems.map(\.field) == ["lr"])
    }

    @Test("rho must lie in [0, 1], as in torch")
    func rho() {
        #expect(AdadeltaHyperparameters(rho: 1.1).problems == [OptimizerError(field: "rho", message: "must be in [0, 1], got 1.1")])
        #expect(AdadeltaHyperparameters(rho: -0.1).problems.map(\.field) == ["rho"])
        #expect(AdadeltaHyperparameters(rho: .nan).problems.map(\.field) == ["rho"])
        #expect(AdadeltaHyperparameters(rho: 0).problems.isEmpty)
        #expect(AdadeltaHyperparameters(rho: 1).problems.isEmpty)
    }

    @Test("negative eps and weight decay are refused, naming the field")
    func negativeValues() {
        #expect(AdadeltaHyperparameters(eps: -1e-6).problems == [OptimizerError(field: "eps", message: "must be ≥ 0, got -1e-06")])
        #expect(AdadeltaHyperparameters(weightDecay: -0.5).problems
            == [OptimizerError(field: "weight_decay", message: "must be ≥ 0, got -0.5")])
    }

    @Test("problems lists every invalid field at once, in torch's argument order")
    func everyProblem() {
        let hyperparameters = AdadeltaHyperparameters(lr: 0, rho: 2, eps: -1, weightDecay: -1)
        #expect(hyperparameters.problems.map(\.field) == ["lr", "rho", "eps", "weight_decay"])
    }

    @Test("the optimizer's initializer validates the hyperparameters")
    func initializerValidates() {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        #expect(throws: OptimizerError(field: "rho", message: "must be in [0, 1], got 1.5")) {
            try Adadelta(parameters: [parameter], hyperparameters: AdadeltaHyperparameters(rho: 1.5))
        }
    }

    @Test("JSON uses the spec's snake_case names, and missing keys take the defaults")
    func coding() throws {
        let json = #"{"lr": 0.5, "rho": 0.95, "weight_decay": 0.01}"#
        let decoded = try JSONDecoder().decode(AdadeltaHyperparameters.self, from: Data(json.utf8))
        #expect(decoded == AdadeltaHyperparameters(lr: 0.5, rho: 0.95, eps: 1e-6, weightDecay: 0.01))
        #expect(try JSONDecoder().decode(AdadeltaHyperparameters.self, from: Data("{}".utf8)) == AdadeltaHyperparameters())

        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(decoded)) as? [String: Any]
        #expect(Set(encoded?.keys.map { $0 } ?? []) == ["lr", "rho", "eps", "weight_decay"])
        #expect(try JSONDecoder().decode(AdadeltaHyperparameters.self, from: JSONEncoder().encode(decoded)) == decoded)
    }
}

@Suite("Adadelta")
struct AdadeltaTests {
    static let problems = ["quadratic", "rosenbrock", "logistic"]

    /// The Adadelta variants of the reference file; every Adadelta case must be exactly one of them.
    static let variants: [(name: String, matches: @Sendable (AdadeltaHyperparameters) -> Bool)] = [
        ("plain", { $0.weightDecay == 0 }),
    ]

    static func make(_ hyperparameters: AdadeltaHyperparameters) -> ([Parameter]) throws -> any Optimizer {
        { try Adadelta(parameters: $0, hyperparameters: hyperparameters) }
    }

    static func onlyCase(on problem: String) throws -> (OptimizerCase, AdadeltaHyperparameters) {
        try #require(
            try OptimizerCase.cases("adadelta", as: AdadeltaHyperparameters.self, where: variants[0].matches)
                .first { $0.0.problem.kind == problem },
            "no Adadelta case on \(problem) in optimizers.json")
    }

    @Test("Adadelta follows torch's trajectory on every problem", arguments: problems)
    func plain(problem: String) throws {
        let (testCase, hyperparameters) = try Self.onlyCase(on: problem)
        let trajectory = try runTrajectory(of: testCase, makeOptimizer: Self.make(hyperparameters))
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase): \(error)")
        #expect(error.isWithinTolerance, "\(testCase): \(error)")
    }

    @Test("every Adadelta case of the reference file is one of the variants tested above")
    func coverage() throws {
        let cases = try OptimizerCase.all().filter { $0.optimizer == "adadelta" }
        #expect(cases.count == Self.variants.count * Self.problems.count)
        for testCase in cases {
            let hyperparameters = try testCase.decodeHyperparameters(as: AdadeltaHyperparameters.self)
            #expect(Self.variants.filter { $0.matches(hyperparameters) }.count == 1, "\(testCase)")
        }
    }

    @Test("a wrong rho (0.95 instead of 0.9) is caught by the comparison", arguments: problems)
    func wrongRhoIsCaught(problem: String) throws {
        let (testCase, hyperparameters) = try Self.onlyCase(on: problem)
        var wrong = hyperparameters
        wrong.rho = 0.95
        let trajectory = try runTrajectory(of: testCase, makeOptimizer: Self.make(wrong))
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase) run with rho 0.95: \(error)")
        #expect(!error.isWithinTolerance)
    }

    @Test("a vector split into two parameters follows the same trajectory (per-parameter state)")
    func splitParameters() throws {
        for problem in Self.problems {
            let (testCase, hyperparameters) = try Self.onlyCase(on: problem)
            let whole = try runTrajectory(of: testCase, makeOptimizer: Self.make(hyperparameters))
            let split = try runTrajectory(of: testCase, split: [2, testCase.x0.count - 2], makeOptimizer: Self.make(hyperparameters))
            #expect(whole == split, "\(testCase)")
        }
    }

    @Test("the state is created on the first step, named like torch's, and kept")
    func lazyState() throws {
        let weight = Parameter(name: "weight", value: Tensor(shape: [2, 2], values: [1, 2, 3, 4]), isWeight: true)
        let bias = Parameter(name: "bias", value: Tensor(shape: [2], values: [0.5, -0.5]), isWeight: false)
        let adadelta = try Adadelta(parameters: [weight, bias], hyperparameters: AdadeltaHyperparameters(eps: 0.01))
        #expect(adadelta.stateTensors().isEmpty)

        weight.gradient.fill(2)
        bias.gradient.fill(-1)
        adadelta.step()
        let state = adadelta.stateTensors()
        let names: Set<String> = ["step", "0.square_avg", "0.acc_delta", "1.square_avg", "1.acc_delta"]
        #expect(Set(state.keys) == names)
        #expect(state["step"]?.array == [1])
        #expect(state["0.acc_delta"]?.shape == [2, 2])
        // v = 0.1·g² = 0.4, d = √0.01/√0.41 · 2, u = 0.1·d².
        let d = Float(0.1 / 0.41.squareRoot() * 2)
        #expect(try #require(state["0.square_avg"]?.array).allSatisfy { abs($0 - 0.4) < 1e-6 })
        #expect(try #require(state["0.acc_delta"]?.array).allSatisfy { abs($0 - 0.1 * d * d) < 1e-6 })
        #expect(abs(weight.value[0] - (1 - d)) < 1e-6)

        adadelta.step()
        let later = adadelta.stateTensors()
        #expect(later["step"]?.array == [2])
        for name in names where name != "step" { #expect(later[name] === state[name], "\(name)") }
    }

    @Test("weight decay is an L2 term in the gradient")
    func weightDecay() throws {
        func firstStep(_ hyperparameters: AdadeltaHyperparameters, gradient: Float) throws -> Float {
            let parameter = Parameter(name: "w", value: Tensor(shape: [1], values: [2]), isWeight: true)
            let adadelta = try Adadelta(parameters: [parameter], hyperparameters: hyperparameters)
            parameter.gradient.fill(gradient)
            adadelta.step()
            return parameter.value[0]
        }
        // g + λ·p = 1 + 0.5·2 = 2: the same step as a gradient of 2 without decay.
        #expect(try firstStep(AdadeltaHyperparameters(eps: 0.01, weightDecay: 0.5), gradient: 1)
            == firstStep(AdadeltaHyperparameters(eps: 0.01), gradient: 2))
    }

    @Test("restoring saved state resumes the trajectory exactly")
    func restoreResumes() throws {
        for problem in Self.problems {
            let (testCase, hyperparameters) = try Self.onlyCase(on: problem)
            let split = [2, testCase.x0.count - 2]
            let uninterrupted = try runTrajectory(of: testCase, split: split, makeOptimizer: Self.make(hyperparameters))
            let resumed = try runTrajectoryResumed(of: testCase, at: 10, split: split, makeOptimizer: Self.make(hyperparameters))
            #expect(resumed == uninterrupted, "\(testCase)")
        }
    }

    @Test("restoring an empty state starts over as before the first step")
    func restoreEmpty() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        let adadelta = try Adadelta(parameters: [parameter], hyperparameters: AdadeltaHyperparameters())
        parameter.gradient.fill(1)
        adadelta.step()
        try adadelta.restoreState(from: [:])
        #expect(adadelta.stepCount == 0)
        #expect(adadelta.stateTensors().isEmpty)
    }

    @Test("restoring refuses missing, misshapen or foreign tensors, naming the tensor, and changes nothing")
    func restoreRefusesBadState() throws {
        let parameters = [
            Parameter(name: "weight", value: Tensor(shape: [2, 3]), isWeight: true),
            Parameter(name: "bias", value: Tensor(shape: [2]), isWeight: false),
        ]
        let adadelta = try Adadelta(parameters: parameters, hyperparameters: AdadeltaHyperparameters())
        let good: [String: Tensor] = [
            "step": Tensor(shape: [], values: [7]),
            "0.square_avg": Tensor(shape: [2, 3]), "0.acc_delta": Tensor(shape: [2, 3]),
            "1.square_avg": Tensor(shape: [2]), "1.acc_delta": Tensor(shape: [2]),
        ]
        var missing = good
        missing["1.acc_delta"] = nil
        #expect(throws: OptimizerError(field: "state.1.acc_delta", message: "is missing")) { try adadelta.restoreState(from: missing) }
        var misshapen = good
        misshapen["1.square_avg"] = Tensor(shape: [3])
        #expect(throws: OptimizerError(field: "state.1.square_avg", message: "has shape [3], parameter 1 (bias) has shape [2]")) {
            try adadelta.restoreState(from: misshapen)
        }
        var foreign = good
        foreign["0.exp_avg"] = Tensor(shape: [2, 3])
        #expect(throws: OptimizerError(field: "state.0.exp_avg", message: "is not part of this optimizer's state")) {
            try adadelta.restoreState(from: foreign)
        }
        #expect(adadelta.stateTensors().isEmpty)

        try adadelta.restoreState(from: good)
        #expect(adadelta.stepCount == 7)
        #expect(Set(adadelta.stateTensors().keys) == Set(good.keys))
    }

    @Test("the learning rate a schedule sets is used by the next step")
    func learningRateChanges() throws {
        func firstStep(learningRate: Float) throws -> Float {
            let parameter = Parameter(name: "w", value: Tensor(shape: [1], values: [1]), isWeight: true)
            let adadelta = try Adadelta(parameters: [parameter], hyperparameters: AdadeltaHyperparameters(eps: 0.01))
            parameter.gradient.fill(1)
            adadelta.learningRate = learningRate
            adadelta.step()
            return 1 - parameter.value[0]
        }
        #expect(abs(try firstStep(learningRate: 0.5) - 0.5 * firstStep(learningRate: 1)) < 1e-7)
    }
}
