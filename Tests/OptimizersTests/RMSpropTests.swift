import Foundation
import Optimizers
import Tensors
import Testing

@Suite("RMSpropHyperparameters")
struct RMSpropHyperparametersTests {
    @Test("the defaults are torch's and valid")
    func defaults() {
        let defaults = RMSpropHyperparameters()
        #expect(defaults == RMSpropHyperparameters(lr: 0.01, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0, centered: false))
        #expect(defaults.problems.isEmpty)
    }

    @Test("a learning rate that is not positive is refused with the field and the value")
    func learningRate() {
        #expect(throws: OptimizerError(field: "lr", message: "must be > 0, got -0.01")) {
            try RMSpropHyperparameters(lr: -0.01).validate()
        }
        #expect(RMSpropHyperparameters(lr: 0).problems.map(\.field) == ["lr"])
    }

    @Test("alpha must lie in [0, 1]")
    func alpha() {
        #expect(RMSpropHyperparameters(alpha: -0.1).problems == [OptimizerError(field: "alpha", message: "must be in [0, 1], got -0.1")])
        #expect(RMSpropHyperparameters(alpha: 1.5).problems == [OptimizerError(field: "alpha", message: "must be in [0, 1], got 1.5")])
        #expect(RMSpropHyperparameters(alpha: .nan).problems.map(\.field) == ["alpha"])
        #expect(RMSpropHyperparameters(alpha: 0).problems.isEmpty)
        #expect(RMSpropHyperparameters(alpha: 1).problems.isEmpty)
    }

    @Test("negative eps, weight decay and momentum are refused, naming the field")
    func negativeValues() {
        #expect(RMSpropHyperparameters(eps: -1e-8).problems == [OptimizerError(field: "eps", message: "must be ≥ 0, got -1e-08")])
        #expect(RMSpropHyperparameters(weightDecay: -0.01).problems.map(\.field) == ["weight_decay"])
        #expect(RMSpropHyperparameters(momentum: -0.5).problems
            == [OptimizerError(field: "momentum", message: "must be ≥ 0, got -0.5")])
        #expect(RMSpropHyperparameters(momentum: .infinity).problems.map(\.field) == ["momentum"])
    }

    @Test("problems lists every invalid field at once, in torch's argument order")
    func everyProblem() {
        let hyperparameters = RMSpropHyperparameters(lr: -1, alpha: 2, eps: -1, weightDecay: -1, momentum: -1, centered: true)
        #expect(hyperparameters.problems.map(\.field) == ["lr", "alpha", "eps", "weight_decay", "momentum"])
    }

    @Test("the optimizer's initializer validates the hyperparameters")
    func initializerValidates() {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        #expect(throws: OptimizerError(field: "alpha", message: "must be in [0, 1], got 1.5")) {
            try RMSprop(parameters: [parameter], hyperparameters: RMSpropHyperparameters(alpha: 1.5))
        }
    }

    @Test("JSON uses the spec's snake_case names, and missing keys take the defaults")
    func coding() throws {
        let json = #"{"lr": 0.005, "alpha": 0.9, "centered": true, "momentum": 0.5, "weight_decay": 0.1}"#
        let decoded = try JSONDecoder().decode(RMSpropHyperparameters.self, from: Data(json.utf8))
        #expect(decoded == RMSpropHyperparameters(lr: 0.005, alpha: 0.9, eps: 1e-8, weightDecay: 0.1, momentum: 0.5, centered: true))
        #expect(try JSONDecoder().decode(RMSpropHyperparameters.self, from: Data("{}".utf8)) == RMSpropHyperparameters())

        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(decoded)) as? [String: Any]
        #expect(Set(encoded?.keys.map { $0 } ?? []) == ["lr", "alpha", "eps", "weight_decay", "momentum", "centered"])
        #expect(try JSONDecoder().decode(RMSpropHyperparameters.self, from: JSONEncoder().encode(decoded)) == decoded)
    }
}

@Suite("RMSprop")
struct RMSpropTests {
    static let problems = ["quadratic", "rosenbrock", "logistic"]

    /// The RMSprop variants of the reference file; every RMSprop case must be exactly one of them.
    static let variants: [(name: String, matches: @Sendable (RMSpropHyperparameters) -> Bool)] = [
        ("plain", { !$0.centered && $0.momentum == 0 && $0.weightDecay == 0 }),
        ("centered with momentum", { $0.centered && $0.momentum > 0 && $0.weightDecay == 0 }),
    ]

    static func make(_ hyperparameters: RMSpropHyperparameters) -> ([Parameter]) throws -> any Optimizer {
        { try RMSprop(parameters: $0, hyperparameters: hyperparameters) }
    }

    func checkTrajectory(variant: String, problem: String) throws {
        let matches = try #require(Self.variants.first { $0.name == variant }).matches
        let (testCase, hyperparameters) = try #require(
            try OptimizerCase.cases("rmsprop", as: RMSpropHyperparameters.self, where: matches).first { $0.0.problem.kind == problem },
            "no RMSprop \(variant) case on \(problem) in optimizers.json")
        let trajectory = try runTrajectory(of: testCase, makeOptimizer: Self.make(hyperparameters))
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase): \(error)")
        #expect(error.isWithinTolerance, "\(testCase): \(error)")
    }

    @Test("RMSprop follows torch's trajectory on every problem", arguments: problems)
    func plain(problem: String) throws { try checkTrajectory(variant: "plain", problem: problem) }

    @Test("centered RMSprop with momentum follows torch's trajectory on every problem", arguments: problems)
    func centeredWithMomentum(problem: String) throws { try checkTrajectory(variant: "centered with momentum", problem: problem) }

    @Test("every RMSprop case of the reference file is one of the variants tested above")
    func coverage() throws {
        let cases = try OptimizerCase.all().filter { $0.optimizer == "rmsprop" }
        #expect(cases.count == Self.variants.count * Self.problems.count)
        for testCase in cases {
            let hyperparameters = try testCase.decodeHyperparameters(as: RMSpropHyperparameters.self)
            #expect(Self.variants.filter { $0.matches(hyperparameters) }.count == 1, "\(testCase)")
        }
    }

    @Test("RMSprop without centering on the centered cases is caught by the comparison", arguments: problems)
    func missingCenteringIsCaught(problem: String) throws {
        let (testCase, hyperparameters) = try #require(try OptimizerCase.cases(
            "rmsprop", as: RMSpropHyperparameters.self, where: { $0.centered }
        ).first { $0.0.problem.kind == problem })
        var wrong = hyperparameters
        wrong.centered = false
        let trajectory = try runTrajectory(of: testCase, makeOptimizer: Self.make(wrong))
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase) run without centering: \(error)")
        #expect(!error.isWithinTolerance)
    }

    @Test("a vector split into two parameters follows the same trajectory (per-parameter state)")
    func splitParameters() throws {
        for (testCase, hyperparameters) in try OptimizerCase.cases("rmsprop", as: RMSpropHyperparameters.self, where: { _ in true }) {
            let whole = try runTrajectory(of: testCase, makeOptimizer: Self.make(hyperparameters))
            let split = try runTrajectory(of: testCase, split: [2, testCase.x0.count - 2], makeOptimizer: Self.make(hyperparameters))
            #expect(whole == split, "\(testCase)")
        }
    }

    @Test("the state is created on the first step, named like torch's, only the buffers the options need, and kept",
          arguments: [(false, false), (true, false), (false, true), (true, true)])
    func lazyState(centered: Bool, withMomentum: Bool) throws {
        let weight = Parameter(name: "weight", value: Tensor(shape: [2, 2], values: [1, 2, 3, 4]), isWeight: true)
        let bias = Parameter(name: "bias", value: Tensor(shape: [2], values: [0.5, -0.5]), isWeight: false)
        let rmsprop = try RMSprop(
            parameters: [weight, bias],
            hyperparameters: RMSpropHyperparameters(lr: 0.1, alpha: 0.9, momentum: withMomentum ? 0.5 : 0, centered: centered))
        #expect(rmsprop.stateTensors().isEmpty)

        weight.gradient.fill(2)
        bias.gradient.fill(-1)
        rmsprop.step()
        let state = rmsprop.stateTensors()
        var names: Set<String> = ["step", "0.square_avg", "1.square_avg"]
        if withMomentum { names.formUnion(["0.momentum_buffer", "1.momentum_buffer"]) }
        if centered { names.formUnion(["0.grad_avg", "1.grad_avg"]) }
        #expect(Set(state.keys) == names)
        #expect(state["step"]?.array == [1])
        #expect(state["0.square_avg"]?.shape == [2, 2])
        // v = (1 − α)·g², m = (1 − α)·g after the first step.
        #expect(try #require(state["0.square_avg"]?.array).allSatisfy { abs($0 - 0.4) < 1e-6 })
        if centered { #expect(try #require(state["1.grad_avg"]?.array).allSatisfy { abs($0 + 0.1) < 1e-6 }) }
        // The first step: g/√v = 1/√(1 − α) per unit of sign(g); centered, g/√(v − m²) = 1/√((1 − α)·α).
        let move: Float = 0.1 / (centered ? (0.1 * 0.9 as Float).squareRoot() : (0.1 as Float).squareRoot())
        #expect(abs(weight.value[0] - (1 - move)) < 1e-5)
        #expect(abs(bias.value[1] - (-0.5 + move)) < 1e-5)

        rmsprop.step()
        let later = rmsprop.stateTensors()
        #expect(later["step"]?.array == [2])
        for name in names where name != "step" { #expect(later[name] === state[name], "\(name)") }
    }

    @Test("restoring saved state resumes the trajectory exactly")
    func restoreResumes() throws {
        for (testCase, hyperparameters) in try OptimizerCase.cases("rmsprop", as: RMSpropHyperparameters.self, where: { _ in true }) {
            let split = [2, testCase.x0.count - 2]
            let uninterrupted = try runTrajectory(of: testCase, split: split, makeOptimizer: Self.make(hyperparameters))
            let resumed = try runTrajectoryResumed(of: testCase, at: 10, split: split, makeOptimizer: Self.make(hyperparameters))
            #expect(resumed == uninterrupted, "\(testCase)")
        }
    }

    @Test("restoring an empty state starts over as before the first step")
    func restoreEmpty() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        let rmsprop = try RMSprop(parameters: [parameter], hyperparameters: RMSpropHyperparameters(momentum: 0.9))
        parameter.gradient.fill(1)
        rmsprop.step()
        try rmsprop.restoreState(from: [:])
        #expect(rmsprop.stepCount == 0)
        #expect(rmsprop.stateTensors().isEmpty)
    }

    @Test("restoring refuses missing, misshapen or foreign tensors, naming the tensor, and changes nothing")
    func restoreRefusesBadState() throws {
        let parameter = Parameter(name: "weight", value: Tensor(shape: [3]), isWeight: true)
        let rmsprop = try RMSprop(parameters: [parameter], hyperparameters: RMSpropHyperparameters(momentum: 0.9, centered: true))
        let good: [String: Tensor] = [
            "step": Tensor(shape: [], values: [3]),
            "0.square_avg": Tensor(shape: [3]), "0.momentum_buffer": Tensor(shape: [3]), "0.grad_avg": Tensor(shape: [3]),
        ]
        var missing = good
        missing["0.grad_avg"] = nil
        #expect(throws: OptimizerError(field: "state.0.grad_avg", message: "is missing")) { try rmsprop.restoreState(from: missing) }
        var misshapen = good
        misshapen["0.momentum_buffer"] = Tensor(shape: [2])
        #expect(throws: OptimizerError(field: "state.0.momentum_buffer", message: "has shape [2], parameter 0 (weight) has shape [3]")) {
            try rmsprop.restoreState(from: misshapen)
        }
        #expect(rmsprop.stateTensors().isEmpty)

        // A plain RMSprop has neither a momentum buffer nor a gradient average.
        let plain = try RMSprop(parameters: [parameter], hyperparameters: RMSpropHyperparameters())
        #expect(throws: OptimizerError(field: "state.0.grad_avg", message: "is not part of this optimizer's state")) {
            try plain.restoreState(from: good)
        }

        try rmsprop.restoreState(from: good)
        #expect(rmsprop.stepCount == 3)
        #expect(Set(rmsprop.stateTensors().keys) == Set(good.keys))
    }

    @Test("the learning rate a schedule sets is used by the next step")
    func learningRateChanges() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [1], values: [1]), isWeight: true)
        let rmsprop = try RMSprop(parameters: [parameter], hyperparameters: RMSpropHyperparameters(lr: 0.1, alpha: 0))
        parameter.gradient.fill(1)
        rmsprop.learningRate = 0.01
        rmsprop.step()
        #expect(abs(parameter.value[0] - 0.99) < 1e-6)  // with α = 0 a step moves by lr·g/|g|
        #expect(rmsprop.hyperparameters.lr == 0.1)
    }
}
