import Foundation
import Optimizers
import Tensors
import Testing

@Suite("AdagradHyperparameters")
struct AdagradHyperparametersTests {
    @Test("the defaults are torch's and valid")
    func defaults() {
        let defaults = AdagradHyperparameters()
        #expect(defaults == AdagradHyperparameters(lr: 0.01, lrDecay: 0, weightDecay: 0, initialAccumulatorValue: 0, eps: 1e-10))
        #expect(defaults.problems.isEmpty)
    }

    @Test("a learning rate that is not positive is refused with the field and the value")
    func learningRate() {
        #expect(throws: OptimizerError(field: "lr", message: "must be > 0, got -0.1")) {
            try AdagradHyperparameters(lr: -0.1).validate()
        }
        #expect(AdagradHyperparameters(lr: 0).problems.map(\.field) == ["lr"])
        #expect(AdagradHyperparameters(lr: .nan).problems.map(\.field) == ["lr"])
    }

    @Test("negative or non-finite decays, accumulator and eps are refused, naming the field")
    func negativeValues() {
        #expect(AdagradHyperparameters(lrDecay: -0.01).problems
            == [OptimizerError(field: "lr_decay", message: "must be ≥ 0, got -0.01")])
        #expect(AdagradHyperparameters(weightDecay: -1).problems.map(\.field) == ["weight_decay"])
        #expect(AdagradHyperparameters(initialAccumulatorValue: -0.1).problems
            == [OptimizerError(field: "initial_accumulator_value", message: "must be ≥ 0, got -0.1")])
        #expect(AdagradHyperparameters(eps: -1e-10).problems
            == [OptimizerError(field: "eps", message: "must be ≥ 0, got -1e-10")])
        #expect(AdagradHyperparameters(lrDecay: .infinity).problems.map(\.field) == ["lr_decay"])
        #expect(AdagradHyperparameters(lrDecay: 0, weightDecay: 0, initialAccumulatorValue: 0, eps: 0).problems.isEmpty)
    }

    @Test("problems lists every invalid field at once, in torch's argument order")
    func everyProblem() {
        let hyperparameters = AdagradHyperparameters(lr: -1, lrDecay: -1, weightDecay: -1, initialAccumulatorValue: -1, eps: -1)
        #expect(hyperparameters.problems.map(\.field) == ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"])
        #expect(throws: OptimizerError(field: "lr", message: "must be > 0, got -1.0")) { try hyperparameters.validate() }
    }

    @Test("the optimizer's initializer validates the hyperparameters and refuses a parameter listed twice")
    func initializerValidates() {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        #expect(throws: OptimizerError(field: "initial_accumulator_value", message: "must be ≥ 0, got -2.0")) {
            try Adagrad(parameters: [parameter], hyperparameters: AdagradHyperparameters(initialAccumulatorValue: -2))
        }
        #expect(throws: OptimizerError(field: "parameters", message: "lists parameter 1 (w) more than once")) {
            try Adagrad(parameters: [parameter, parameter], hyperparameters: AdagradHyperparameters())
        }
    }

    @Test("JSON uses the spec's snake_case names, and missing keys take the defaults")
    func coding() throws {
        let json = #"{"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.001}"#
        let decoded = try JSONDecoder().decode(AdagradHyperparameters.self, from: Data(json.utf8))
        #expect(decoded == AdagradHyperparameters(lr: 0.1, lrDecay: 0.01, weightDecay: 0.001, initialAccumulatorValue: 0.1, eps: 1e-10))
        #expect(try JSONDecoder().decode(AdagradHyperparameters.self, from: Data("{}".utf8)) == AdagradHyperparameters())

        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(decoded)) as? [String: Any]
        #expect(Set(encoded?.keys.map { $0 } ?? []) == ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"])
        #expect(try JSONDecoder().decode(AdagradHyperparameters.self, from: JSONEncoder().encode(decoded)) == decoded)
    }
}

@Suite("Adagrad")
struct AdagradTests {
    static let problems = ["quadratic", "rosenbrock", "logistic"]

    /// The Adagrad variants of the reference file; every Adagrad case must be exactly one of them.
    static let variants: [(name: String, matches: @Sendable (AdagradHyperparameters) -> Bool)] = [
        ("plain", { $0.lrDecay == 0 && $0.initialAccumulatorValue == 0 && $0.weightDecay == 0 }),
        ("lr decay, initial accumulator and weight decay", {
            $0.lrDecay > 0 && $0.initialAccumulatorValue > 0 && $0.weightDecay > 0
        }),
    ]

    static func make(_ hyperparameters: AdagradHyperparameters) -> ([Parameter]) throws -> any Optimizer {
        { try Adagrad(parameters: $0, hyperparameters: hyperparameters) }
    }

    func checkTrajectory(variant: String, problem: String) throws {
        let matches = try #require(Self.variants.first { $0.name == variant }).matches
        let (testCase, hyperparameters) = try #require(
            try OptimizerCase.cases("adagrad", as: AdagradHyperparameters.self, where: matches).first { $0.0.problem.kind == problem },
            "no Adagrad \(variant) case on \(problem) in optimizers.json")
        let trajectory = try runTrajectory(of: testCase, makeOptimizer: Self.make(hyperparameters))
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase): \(error)")
        #expect(error.isWithinTolerance, "\(testCase): \(error)")
    }

    @Test("Adagrad follows torch's trajectory on every problem", arguments: problems)
    func plain(problem: String) throws { try checkTrajectory(variant: "plain", problem: problem) }

    @Test("Adagrad with lr decay, an initial accumulator and weight decay follows torch's trajectory on every problem",
          arguments: problems)
    func decays(problem: String) throws {
        try checkTrajectory(variant: "lr decay, initial accumulator and weight decay", problem: problem)
    }

    @Test("every Adagrad case of the reference file is one of the variants tested above")
    func coverage() throws {
        let cases = try OptimizerCase.all().filter { $0.optimizer == "adagrad" }
        #expect(cases.count == Self.variants.count * Self.problems.count)
        for testCase in cases {
            let hyperparameters = try testCase.decodeHyperparameters(as: AdagradHyperparameters.self)
            #expect(Self.variants.filter { $0.matches(hyperparameters) }.count == 1, "\(testCase)")
        }
    }

    @Test("a missing lr decay (0 instead of 0.01) is caught by the comparison", arguments: problems)
    func missingLearningRateDecayIsCaught(problem: String) throws {
        let (testCase, hyperparameters) = try #require(try OptimizerCase.cases(
            "adagrad", as: AdagradHyperparameters.self, where: { $0.lrDecay == 0.01 }
        ).first { $0.0.problem.kind == problem })
        var wrong = hyperparameters
        wrong.lrDecay = 0
        let trajectory = try runTrajectory(of: testCase, makeOptimizer: Self.make(wrong))
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase) run with lr_decay 0: \(error)")
        #expect(!error.isWithinTolerance)
    }

    @Test("a vector split into two parameters follows the same trajectory (per-parameter state)")
    func splitParameters() throws {
        for (testCase, hyperparameters) in try OptimizerCase.cases("adagrad", as: AdagradHyperparameters.self, where: { _ in true }) {
            let whole = try runTrajectory(of: testCase, makeOptimizer: Self.make(hyperparameters))
            let split = try runTrajectory(of: testCase, split: [2, testCase.x0.count - 2], makeOptimizer: Self.make(hyperparameters))
            #expect(whole == split, "\(testCase)")
        }
    }

    @Test("the sums start at the initial accumulator value on the first step, are named like torch's, and are kept")
    func lazyState() throws {
        let weight = Parameter(name: "weight", value: Tensor(shape: [2, 2], values: [1, 2, 3, 4]), isWeight: true)
        let bias = Parameter(name: "bias", value: Tensor(shape: [2], values: [0.5, -0.5]), isWeight: false)
        let adagrad = try Adagrad(
            parameters: [weight, bias], hyperparameters: AdagradHyperparameters(lr: 0.1, initialAccumulatorValue: 0.5))
        #expect(adagrad.stateTensors().isEmpty)
        #expect(adagrad.stepCount == 0)

        weight.gradient.fill(2)
        bias.gradient.fill(-1)
        adagrad.step()
        let state = adagrad.stateTensors()
        #expect(Set(state.keys) == ["step", "0.sum", "1.sum"])
        #expect(state["step"]?.array == [1])
        #expect(state["0.sum"]?.shape == [2, 2])
        #expect(state["0.sum"]?.array == [4.5, 4.5, 4.5, 4.5])  // 0.5 + 2²
        #expect(state["1.sum"]?.array == [1.5, 1.5])  // 0.5 + 1²
        // p − lr·g/√s: 1 − 0.1·2/√4.5 and 0.5 + 0.1/√1.5
        let weightAfter: Float = 1 - 0.2 / (4.5 as Float).squareRoot()
        let biasAfter: Float = 0.5 + 0.1 / (1.5 as Float).squareRoot()
        #expect(abs(weight.value[0] - weightAfter) < 1e-6)
        #expect(abs(bias.value[0] - biasAfter) < 1e-6)

        adagrad.step()
        let later = adagrad.stateTensors()
        #expect(later["step"]?.array == [2])
        #expect(later["0.sum"] === state["0.sum"])
        #expect(later["1.sum"] === state["1.sum"])
    }

    @Test("lr decay divides the learning rate of step t by 1 + (t − 1)·lr_decay")
    func learningRateDecay() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [1], values: [0]), isWeight: true)
        let adagrad = try Adagrad(parameters: [parameter], hyperparameters: AdagradHyperparameters(lr: 1, lrDecay: 1, eps: 0))
        var sum: Float = 0
        var expected: Float = 0
        for t in 1...3 {
            parameter.gradient.fill(1)
            adagrad.step()
            sum += 1
            expected -= 1 / Float(t) / sum.squareRoot()
            #expect(abs(parameter.value[0] - expected) < 1e-6, "step \(t)")
        }
    }

    @Test("restoring saved state resumes the trajectory exactly")
    func restoreResumes() throws {
        for (testCase, hyperparameters) in try OptimizerCase.cases("adagrad", as: AdagradHyperparameters.self, where: { _ in true }) {
            let split = [2, testCase.x0.count - 2]
            let uninterrupted = try runTrajectory(of: testCase, split: split, makeOptimizer: Self.make(hyperparameters))
            let resumed = try runTrajectoryResumed(of: testCase, at: 10, split: split, makeOptimizer: Self.make(hyperparameters))
            #expect(resumed == uninterrupted, "\(testCase)")
        }
    }

    @Test("restoring an empty state starts over as before the first step")
    func restoreEmpty() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        let adagrad = try Adagrad(parameters: [parameter], hyperparameters: AdagradHyperparameters())
        parameter.gradient.fill(1)
        adagrad.step()
        try adagrad.restoreState(from: [:])
        #expect(adagrad.stepCount == 0)
        #expect(adagrad.stateTensors().isEmpty)
    }

    @Test("restoring refuses a bad step count, missing, misshapen or foreign tensors, naming the tensor, and changes nothing")
    func restoreRefusesBadState() throws {
        let parameter = Parameter(name: "weight", value: Tensor(shape: [3]), isWeight: true)
        let adagrad = try Adagrad(parameters: [parameter], hyperparameters: AdagradHyperparameters())
        let good: [String: Tensor] = ["step": Tensor(shape: [], values: [4]), "0.sum": Tensor(shape: [3], repeating: 1)]
        var missing = good
        missing["0.sum"] = nil
        #expect(throws: OptimizerError(field: "state.0.sum", message: "is missing")) { try adagrad.restoreState(from: missing) }
        var noStep = good
        noStep["step"] = nil
        #expect(throws: OptimizerError(field: "state.step", message: "is missing")) { try adagrad.restoreState(from: noStep) }
        var misshapen = good
        misshapen["0.sum"] = Tensor(shape: [1, 3])
        #expect(throws: OptimizerError(field: "state.0.sum", message: "has shape [1, 3], parameter 0 (weight) has shape [3]")) {
            try adagrad.restoreState(from: misshapen)
        }
        var foreign = good
        foreign["0.momentum_buffer"] = Tensor(shape: [3])
        #expect(throws: OptimizerError(field: "state.0.momentum_buffer", message: "is not part of this optimizer's state")) {
            try adagrad.restoreState(from: foreign)
        }
        #expect(adagrad.stateTensors().isEmpty)
        #expect(adagrad.stepCount == 0)

        try adagrad.restoreState(from: good)
        #expect(adagrad.stepCount == 4)
        #expect(adagrad.stateTensors()["0.sum"]?.array == [1, 1, 1])
        #expect(adagrad.stateTensors()["0.sum"] !== good["0.sum"])  // copied, not shared
    }

    @Test("the learning rate a schedule sets is used by the next step")
    func learningRateChanges() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [1], values: [1]), isWeight: true)
        let adagrad = try Adagrad(parameters: [parameter], hyperparameters: AdagradHyperparameters(lr: 0.1))
        parameter.gradient.fill(1)
        adagrad.learningRate = 0.01
        adagrad.step()
        #expect(abs(parameter.value[0] - 0.99) < 1e-6)  // the first Adagrad step moves by lr·g/|g|
        #expect(adagrad.hyperparameters.lr == 0.1)
    }
}
