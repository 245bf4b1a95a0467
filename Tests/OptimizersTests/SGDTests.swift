import Foundation
import Optimizers
import Tensors
import Testing

@Suite("SGDHyperparameters")
struct SGDHyperparametersTests {
    @Test("the defaults are torch 2.x's and valid")
    func defaults() {
        let defaults = SGDHyperparameters()
        #expect(defaults == SGDHyperparameters(lr: 0.001, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0))
        #expect(defaults.problems.isEmpty)
    }

    @Test("a negative learning rate is refused with the field and the value")
    func negativeLearningRate() {
        #expect(throws: OptimizerError(field: "lr", message: "must be > 0, got -0.1")) {
            try SGDHyperparameters(lr: -0.1).validate()
        }
    }

    @Test("a zero learning rate is refused, unlike torch")
    func zeroLearningRate() {
        #expect(SGDHyperparameters(lr: 0).problems.map(\.field) == ["lr"])
    }

    @Test("negative momentum and weight decay are refused, naming the field")
    func negativeValues() {
        #expect(SGDHyperparameters(momentum: -0.5).problems
            == [OptimizerError(field: "momentum", message: "must be ≥ 0, got -0.5")])
        #expect(SGDHyperparameters(weightDecay: -0.01).problems
            == [OptimizerError(field: "weight_decay", message: "must be ≥ 0, got -0.01")])
    }

    @Test("Nesterov momentum needs momentum and no dampening, as in torch")
    func nesterovRequirements() {
        #expect(SGDHyperparameters(momentum: 0, nesterov: true).problems.map(\.field) == ["nesterov"])
        #expect(SGDHyperparameters(momentum: 0.9, dampening: 0.1, nesterov: true).problems
            == [OptimizerError(field: "nesterov", message: "requires momentum > 0 and dampening = 0, got momentum 0.9 and dampening 0.1")])
        #expect(SGDHyperparameters(momentum: 0.9, nesterov: true).problems.isEmpty)
    }

    @Test("NaN and infinite values are refused")
    func nonFinite() {
        #expect(SGDHyperparameters(lr: .nan).problems.map(\.field) == ["lr"])
        #expect(SGDHyperparameters(lr: .infinity).problems.map(\.field) == ["lr"])
        #expect(SGDHyperparameters(momentum: .nan).problems.map(\.field) == ["momentum"])
        #expect(SGDHyperparameters(dampening: .infinity).problems.map(\.field) == ["dampening"])
        #expect(SGDHyperparameters(weightDecay: .nan).problems.map(\.field) == ["weight_decay"])
    }

    @Test("problems lists every invalid field at once")
    func everyProblem() {
        let hyperparameters = SGDHyperparameters(lr: -1, momentum: -1, nesterov: true, weightDecay: -1)
        #expect(hyperparameters.problems.map(\.field) == ["lr", "momentum", "weight_decay", "nesterov"])
        #expect(throws: OptimizerError(field: "lr", message: "must be > 0, got -1.0")) { try hyperparameters.validate() }
    }

    @Test("the optimizer's initializer validates the hyperparameters")
    func initializerValidates() {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        #expect(throws: OptimizerError(field: "momentum", message: "must be ≥ 0, got -0.9")) {
            try SGD(parameters: [parameter], hyperparameters: SGDHyperparameters(lr: 0.1, momentum: -0.9))
        }
    }

    @Test("JSON uses the spec's names, and missing keys take the defaults")
    func coding() throws {
        let json = #"{"lr": 0.05, "momentum": 0.9, "weight_decay": 0.0001, "nesterov": true}"#
        let decoded = try JSONDecoder().decode(SGDHyperparameters.self, from: Data(json.utf8))
        #expect(decoded == SGDHyperparameters(lr: 0.05, momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 0.0001))
        #expect(try JSONDecoder().decode(SGDHyperparameters.self, from: Data("{}".utf8)) == SGDHyperparameters())

        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(decoded)) as? [String: Any]
        #expect(Set(encoded?.keys.map { $0 } ?? []) == ["lr", "momentum", "dampening", "nesterov", "weight_decay"])
        #expect(try JSONDecoder().decode(SGDHyperparameters.self, from: JSONEncoder().encode(decoded)) == decoded)
    }
}

@Suite("SGD")
struct SGDTests {
    static let problems = ["quadratic", "rosenbrock", "logistic"]

    /// The SGD variants of the reference file; every SGD case must be exactly one of them.
    static let variants: [(name: String, matches: @Sendable (SGDHyperparameters) -> Bool)] = [
        ("plain", { $0.momentum == 0 && $0.weightDecay == 0 }),
        ("momentum", { $0.momentum > 0 && !$0.nesterov && $0.dampening == 0 && $0.weightDecay == 0 }),
        ("nesterov", { $0.nesterov && $0.weightDecay == 0 }),
        ("dampening and weight decay", { $0.momentum > 0 && $0.dampening > 0 && $0.weightDecay > 0 }),
    ]

    /// Runs the reference case of `variant` on `problem` and checks every step against torch.
    func checkTrajectory(variant: String, problem: String) throws {
        let matches = try #require(Self.variants.first { $0.name == variant }).matches
        let (testCase, hyperparameters) = try #require(
            try OptimizerCase.cases("sgd", as: SGDHyperparameters.self, where: matches).first { $0.0.problem.kind == problem },
            "no SGD \(variant) case on \(problem) in optimizers.json")
        let trajectory = try runTrajectory(of: testCase) {
            try SGD(parameters: $0, hyperparameters: hyperparameters)
        }
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase): \(error)")
        #expect(error.isWithinTolerance, "\(testCase): \(error)")
    }

    @Test("plain SGD follows torch's trajectory on every problem", arguments: problems)
    func plain(problem: String) throws { try checkTrajectory(variant: "plain", problem: problem) }

    @Test("SGD with momentum follows torch's trajectory on every problem", arguments: problems)
    func momentum(problem: String) throws { try checkTrajectory(variant: "momentum", problem: problem) }

    @Test("SGD with Nesterov momentum follows torch's trajectory on every problem", arguments: problems)
    func nesterov(problem: String) throws { try checkTrajectory(variant: "nesterov", problem: problem) }

    @Test("SGD with dampening and weight decay follows torch's trajectory on every problem", arguments: problems)
    func dampeningAndWeightDecay(problem: String) throws {
        try checkTrajectory(variant: "dampening and weight decay", problem: problem)
    }

    @Test("every SGD case of the reference file is one of the variants tested above")
    func coverage() throws {
        let cases = try OptimizerCase.all().filter { $0.optimizer == "sgd" }
        #expect(cases.count == Self.variants.count * Self.problems.count)
        for testCase in cases {
            let hyperparameters = try testCase.decodeHyperparameters(as: SGDHyperparameters.self)
            #expect(Self.variants.filter { $0.matches(hyperparameters) }.count == 1, "\(testCase)")
        }
    }

    @Test("a wrong momentum (0.8 instead of 0.9) is caught by the comparison", arguments: problems)
    func wrongMomentumIsCaught(problem: String) throws {
        let (testCase, hyperparameters) = try #require(try OptimizerCase.cases(
            "sgd", as: SGDHyperparameters.self, where: { $0.momentum == 0.9 && !$0.nesterov }
        ).first { $0.0.problem.kind == problem })
        var wrong = hyperparameters
        wrong.momentum = 0.8
        let trajectory = try runTrajectory(of: testCase) { try SGD(parameters: $0, hyperparameters: wrong) }
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase) run with momentum 0.8: \(error)")
        #expect(!error.isWithinTolerance)
    }

    @Test("a vector split into two parameters follows the same trajectory (per-parameter state)")
    func splitParameters() throws {
        for (testCase, hyperparameters) in try OptimizerCase.cases("sgd", as: SGDHyperparameters.self, where: { $0.momentum > 0 }) {
            let whole = try runTrajectory(of: testCase) { try SGD(parameters: $0, hyperparameters: hyperparameters) }
            let split = try runTrajectory(of: testCase, split: [2, testCase.x0.count - 2]) {
                try SGD(parameters: $0, hyperparameters: hyperparameters)
            }
            #expect(whole == split, "\(testCase)")
        }
    }

    @Test("the momentum buffers are created on the first step, from its gradient, and kept")
    func lazyState() throws {
        let weight = Parameter(name: "weight", value: Tensor(shape: [2, 2], values: [1, 2, 3, 4]), isWeight: true)
        let bias = Parameter(name: "bias", value: Tensor(shape: [2], values: [0.5, -0.5]), isWeight: false)
        let sgd = try SGD(parameters: [weight, bias], hyperparameters: SGDHyperparameters(lr: 0.1, momentum: 0.9, weightDecay: 0.5))
        #expect(sgd.stateTensors().isEmpty)

        weight.gradient.fill(1)
        bias.gradient.fill(-1)
        sgd.step()
        let state = sgd.stateTensors()
        #expect(Set(state.keys) == ["0.momentum_buffer", "1.momentum_buffer"])
        // First buffer = gradient + weight decay · p (before the update), no dampening.
        #expect(state["0.momentum_buffer"]?.array == [1.5, 2, 2.5, 3])
        #expect(state["0.momentum_buffer"]?.shape == [2, 2])
        #expect(state["1.momentum_buffer"]?.array == [-0.75, -1.25])

        sgd.step()
        let later = sgd.stateTensors()
        #expect(later["0.momentum_buffer"] === state["0.momentum_buffer"])
        #expect(later["1.momentum_buffer"] === state["1.momentum_buffer"])
    }

    @Test("without momentum SGD has no state")
    func noState() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [3], values: [1, 2, 3]), isWeight: true)
        let sgd = try SGD(parameters: [parameter], hyperparameters: SGDHyperparameters(lr: 0.5))
        parameter.gradient.fill(2)
        sgd.step()
        #expect(parameter.value.array == [0, 1, 2])
        #expect(sgd.stateTensors().isEmpty)
        #expect(throws: OptimizerError.self) {
            try sgd.restoreState(from: ["0.momentum_buffer": Tensor(shape: [3])])
        }
    }

    @Test("restoring saved state resumes the trajectory exactly")
    func restoreResumes() throws {
        for (testCase, hyperparameters) in try OptimizerCase.cases("sgd", as: SGDHyperparameters.self, where: { $0.momentum > 0 }) {
            let make = { (parameters: [Parameter]) throws -> any Optimizer in
                try SGD(parameters: parameters, hyperparameters: hyperparameters)
            }
            let uninterrupted = try runTrajectory(of: testCase, split: [2, testCase.x0.count - 2], makeOptimizer: make)
            let resumed = try runTrajectoryResumed(of: testCase, at: 10, split: [2, testCase.x0.count - 2], makeOptimizer: make)
            #expect(resumed == uninterrupted, "\(testCase)")
        }
    }

    @Test("restoring refuses missing, misshapen or foreign tensors, naming the tensor, and changes nothing")
    func restoreRefusesBadState() throws {
        let parameters = [
            Parameter(name: "weight", value: Tensor(shape: [2, 3]), isWeight: true),
            Parameter(name: "bias", value: Tensor(shape: [2]), isWeight: false),
        ]
        let sgd = try SGD(parameters: parameters, hyperparameters: SGDHyperparameters(lr: 0.1, momentum: 0.9))
        #expect(throws: OptimizerError(field: "state.1.momentum_buffer", message: "is missing")) {
            try sgd.restoreState(from: ["0.momentum_buffer": Tensor(shape: [2, 3])])
        }
        #expect(throws: OptimizerError(
            field: "state.1.momentum_buffer", message: "has shape [3], parameter 1 (bias) has shape [2]")
        ) {
            try sgd.restoreState(from: ["0.momentum_buffer": Tensor(shape: [2, 3]), "1.momentum_buffer": Tensor(shape: [3])])
        }
        #expect(throws: OptimizerError(field: "state.0.exp_avg", message: "is not part of this optimizer's state")) {
            try sgd.restoreState(from: [
                "0.momentum_buffer": Tensor(shape: [2, 3]), "1.momentum_buffer": Tensor(shape: [2]),
                "0.exp_avg": Tensor(shape: [2, 3]),
            ])
        }
        #expect(sgd.stateTensors().isEmpty)
    }

    @Test("the learning rate a schedule sets is used by the next step")
    func learningRateChanges() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [1], values: [1]), isWeight: true)
        let sgd = try SGD(parameters: [parameter], hyperparameters: SGDHyperparameters(lr: 0.1))
        #expect(sgd.learningRate == 0.1)
        parameter.gradient.fill(1)
        sgd.step()
        #expect(parameter.value[0] == 0.9)
        sgd.learningRate = 0.5
        sgd.step()
        #expect(abs(parameter.value[0] - 0.4) < 1e-6)
        #expect(sgd.hyperparameters.lr == 0.1)
    }

    @Test("step leaves the gradients alone and zeroGradients clears them all")
    func gradients() throws {
        let parameters = [
            Parameter(name: "weight", value: Tensor(shape: [2]), isWeight: true),
            Parameter(name: "bias", value: Tensor(shape: [1]), isWeight: false),
        ]
        let sgd = try SGD(parameters: parameters, hyperparameters: SGDHyperparameters(lr: 0.1, momentum: 0.9))
        for parameter in parameters { parameter.gradient.fill(3) }
        sgd.step()
        #expect(parameters.allSatisfy { $0.gradient.array.allSatisfy { $0 == 3 } })
        sgd.zeroGradients()
        #expect(parameters.allSatisfy { $0.gradient.array.allSatisfy { $0 == 0 } })
    }

    @Test("a parameter listed twice is refused")
    func duplicateParameter() {
        let parameter = Parameter(name: "weight", value: Tensor(shape: [2]), isWeight: true)
        #expect(throws: OptimizerError(field: "parameters", message: "lists parameter 1 (weight) more than once")) {
            try SGD(parameters: [parameter, parameter], hyperparameters: SGDHyperparameters())
        }
    }
}
