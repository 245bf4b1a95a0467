import Foundation
import Optimizers
import Tensors
import Testing

@Suite("NAdamHyperparameters")
struct NAdamHyperparametersTests {
    @Test("the defaults are torch's and valid")
    func defaults() {
        let defaults = NAdamHyperparameters()
        #expect(defaults == NAdamHyperparameters(
            lr: 0.002, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, momentumDecay: 0.004, decoupledWeightDecay: false))
        #expect(defaults.problems.isEmpty)
    }

    @Test("a learning rate that is not positive is refused with the field and the value")
    func learningRate() {
        #expect(throws: OptimizerError(field: "lr", message: "must be > 0, got -0.002")) {
            try NAdamHyperparameters(lr: -0.002).validate()
        }
        #expect(NAdamHyperparameters(lr: 0).problems.map(\.field) == ["lr"])
    }

    @Test("each beta must lie in [0, 1), named by its index in betas")
    func betas() {
        #expect(NAdamHyperparameters(beta1: -0.1).problems
            == [OptimizerError(field: "betas[0]", message: "must be in [0, 1), got -0.1")])
        #expect(NAdamHyperparameters(beta2: 1).problems == [OptimizerError(field: "betas[1]", message: "must be in [0, 1), got 1.0")])
        #expect(NAdamHyperparameters(beta1: .nan).problems.map(\.field) == ["betas[0]"])
    }

    @Test("negative eps, weight decay and momentum decay are refused, naming the field")
    func negativeValues() {
        #expect(NAdamHyperparameters(eps: -1e-8).problems == [OptimizerError(field: "eps", message: "must be ≥ 0, got -1e-08")])
        #expect(NAdamHyperparameters(weightDecay: -0.01).problems.map(\.field) == ["weight_decay"])
        #expect(NAdamHyperparameters(momentumDecay: -0.004).problems
            == [OptimizerError(field: "momentum_decay", message: "must be ≥ 0, got -0.004")])
        #expect(NAdamHyperparameters(momentumDecay: .infinity).problems.map(\.field) == ["momentum_decay"])
    }

    @Test("problems lists every invalid field at once, in torch's argument order")
    func everyProblem() {
        let hyperparameters = NAdamHyperparameters(lr: -1, beta1: 1, beta2: 2, eps: -1, weightDecay: -1, momentumDecay: -1)
        #expect(hyperparameters.problems.map(\.field) == ["lr", "betas[0]", "betas[1]", "eps", "weight_decay", "momentum_decay"])
    }

    @Test("the optimizer's initializer validates the hyperparameters")
    func initializerValidates() {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        #expect(throws: OptimizerError(field: "momentum_decay", message: "must be ≥ 0, got -1.0")) {
            try NAdam(parameters: [parameter], hyperparameters: NAdamHyperparameters(momentumDecay: -1))
        }
    }

    @Test("JSON uses the spec's snake_case names with betas as a pair, and missing keys take the defaults")
    func coding() throws {
        let json = #"{"lr": 0.02, "betas": [0.95, 0.99], "momentum_decay": 0.002, "weight_decay": 0.1, "decoupled_weight_decay": true}"#
        let decoded = try JSONDecoder().decode(NAdamHyperparameters.self, from: Data(json.utf8))
        #expect(decoded == NAdamHyperparameters(
            lr: 0.02, beta1: 0.95, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, momentumDecay: 0.002, decoupledWeightDecay: true))
        #expect(try JSONDecoder().decode(NAdamHyperparameters.self, from: Data("{}".utf8)) == NAdamHyperparameters())
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(NAdamHyperparameters.self, from: Data(#"{"betas": []}"#.utf8))
        }

        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(decoded)) as? [String: Any]
        #expect(Set(encoded?.keys.map { $0 } ?? [])
            == ["lr", "betas", "eps", "weight_decay", "momentum_decay", "decoupled_weight_decay"])
        #expect(try JSONDecoder().decode(NAdamHyperparameters.self, from: JSONEncoder().encode(decoded)) == decoded)
    }
}

@Suite("NAdam")
struct NAdamTests {
    static let problems = ["quadratic", "rosenbrock", "logistic"]

    /// The NAdam variants of the reference file; every NAdam case must be exactly one of them.
    static let variants: [(name: String, matches: @Sendable (NAdamHyperparameters) -> Bool)] = [
        ("plain", { $0.weightDecay == 0 && $0.momentumDecay == 0.004 && !$0.decoupledWeightDecay }),
    ]

    static func make(_ hyperparameters: NAdamHyperparameters) -> ([Parameter]) throws -> any Optimizer {
        { try NAdam(parameters: $0, hyperparameters: hyperparameters) }
    }

    static func onlyCase(on problem: String) throws -> (OptimizerCase, NAdamHyperparameters) {
        try #require(
            try OptimizerCase.cases("nadam", as: NAdamHyperparameters.self, where: variants[0].matches)
                .first { $0.0.problem.kind == problem },
            "no NAdam case on \(problem) in optimizers.json")
    }

    @Test("NAdam follows torch's trajectory on every problem", arguments: problems)
    func plain(problem: String) throws {
        let (testCase, hyperparameters) = try Self.onlyCase(on: problem)
        let trajectory = try runTrajectory(of: testCase, makeOptimizer: Self.make(hyperparameters))
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase): \(error)")
        #expect(error.isWithinTolerance, "\(testCase): \(error)")
    }

    @Test("every NAdam case of the reference file is one of the variants tested above")
    func coverage() throws {
        let cases = try OptimizerCase.all().filter { $0.optimizer == "nadam" }
        #expect(cases.count == Self.variants.count * Self.problems.count)
        for testCase in cases {
            let hyperparameters = try testCase.decodeHyperparameters(as: NAdamHyperparameters.self)
            #expect(Self.variants.filter { $0.matches(hyperparameters) }.count == 1, "\(testCase)")
        }
    }

    @Test("a wrong first beta (0.8 instead of 0.9) is caught by the comparison", arguments: problems)
    func wrongBetaIsCaught(problem: String) throws {
        let (testCase, hyperparameters) = try Self.onlyCase(on: problem)
        var wrong = hyperparameters
        wrong.beta1 = 0.8
        let trajectory = try runTrajectory(of: testCase, makeOptimizer: Self.make(wrong))
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase) run with betas[0] 0.8: \(error)")
        #expect(!error.isWithinTolerance)
    }

    @Test("Adam with the same hyperparameters (no Nesterov look-ahead) is caught by the comparison", arguments: problems)
    func adamIsCaught(problem: String) throws {
        let (testCase, hyperparameters) = try Self.onlyCase(on: problem)
        let adam = AdamHyperparameters(
            lr: hyperparameters.lr, beta1: hyperparameters.beta1, beta2: hyperparameters.beta2, eps: hyperparameters.eps)
        let trajectory = try runTrajectory(of: testCase) { try Adam(parameters: $0, hyperparameters: adam) }
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase) run as Adam: \(error)")
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

    @Test("the state is created on the first step, named like torch's, with the momentum product, and kept")
    func lazyState() throws {
        let weight = Parameter(name: "weight", value: Tensor(shape: [2, 2], values: [1, 2, 3, 4]), isWeight: true)
        let bias = Parameter(name: "bias", value: Tensor(shape: [2], values: [0.5, -0.5]), isWeight: false)
        let nadam = try NAdam(parameters: [weight, bias], hyperparameters: NAdamHyperparameters(lr: 0.1))
        #expect(nadam.stateTensors().isEmpty)
        #expect(nadam.stepCount == 0)

        weight.gradient.fill(2)
        bias.gradient.fill(-1)
        nadam.step()
        let state = nadam.stateTensors()
        let names: Set<String> = [
            "step", "0.exp_avg", "0.exp_avg_sq", "0.mu_product", "1.exp_avg", "1.exp_avg_sq", "1.mu_product",
        ]
        #expect(Set(state.keys) == names)
        #expect(state["step"]?.array == [1])
        #expect(state["0.mu_product"]?.shape == [])
        // μₜ = β1·(1 − ½·0.96^(t·ψ)), from the Float32 hyperparameters.
        let beta1 = Double(Float(0.9)), psi = Double(Float(0.004))
        let mu1 = beta1 * (1 - 0.5 * pow(0.96, psi)), mu2 = beta1 * (1 - 0.5 * pow(0.96, 2 * psi))
        #expect(state["0.mu_product"]?.array == [Float(mu1)])
        #expect(state["1.mu_product"]?.array == [Float(mu1)])
        #expect(try #require(state["0.exp_avg"]?.array).allSatisfy { abs($0 - 0.2) < 1e-6 })
        // The first step: d = |g| (bias-corrected) and m = 0.1·g, so p moves against g by
        // lr·((1 − μ₁)/(1 − μ₁) + μ₂·0.1/(1 − μ₁μ₂)).
        let move = Float(0.1 * (1 + mu2 * 0.1 / (1 - mu1 * mu2)))
        #expect(abs(weight.value[0] - (1 - move)) < 1e-5)
        #expect(abs(bias.value[0] - (0.5 + move)) < 1e-5)

        nadam.step()
        let later = nadam.stateTensors()
        #expect(later["step"]?.array == [2])
        #expect(later["0.mu_product"]?.array == [Float(Double(Float(mu1)) * mu2)])
        for name in names where name != "step" { #expect(later[name] === state[name], "\(name)") }
    }

    @Test("decoupled weight decay multiplies p by 1 − lr·λ; coupled adds λ·p to the gradient")
    func weightDecayForms() throws {
        func firstStep(decoupled: Bool) throws -> Float {
            let parameter = Parameter(name: "w", value: Tensor(shape: [1], values: [2]), isWeight: true)
            let nadam = try NAdam(
                parameters: [parameter],
                hyperparameters: NAdamHyperparameters(lr: 0.1, weightDecay: 0.5, decoupledWeightDecay: decoupled))
            parameter.gradient.fill(1)
            nadam.step()
            return parameter.value[0]
        }
        let mu1 = 0.9 * (1 - 0.5 * pow(0.96, 0.004)), mu2 = 0.9 * (1 - 0.5 * pow(0.96, 0.008))
        let move = Float(0.1 * (1 + mu2 * 0.1 / (1 - mu1 * mu2)))  // the first step moves by this against the sign of g
        #expect(abs(try firstStep(decoupled: true) - (2 * 0.95 - move)) < 1e-5)
        #expect(abs(try firstStep(decoupled: false) - (2 - move)) < 1e-5)  // g + λ·p = 2 > 0: same sign, same move
    }

    @Test("restoring saved state resumes the trajectory exactly", arguments: [false, true])
    func restoreResumes(decoupled: Bool) throws {
        for problem in Self.problems {
            var (testCase, hyperparameters) = try Self.onlyCase(on: problem)
            hyperparameters.weightDecay = 0.01
            hyperparameters.decoupledWeightDecay = decoupled
            let split = [2, testCase.x0.count - 2]
            let uninterrupted = try runTrajectory(of: testCase, split: split, makeOptimizer: Self.make(hyperparameters))
            let resumed = try runTrajectoryResumed(of: testCase, at: 10, split: split, makeOptimizer: Self.make(hyperparameters))
            #expect(resumed == uninterrupted, "\(testCase) decoupled \(decoupled)")
        }
    }

    @Test("restoring an empty state starts over as before the first step")
    func restoreEmpty() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        let nadam = try NAdam(parameters: [parameter], hyperparameters: NAdamHyperparameters())
        parameter.gradient.fill(1)
        nadam.step()
        try nadam.restoreState(from: [:])
        #expect(nadam.stepCount == 0)
        #expect(nadam.stateTensors().isEmpty)
    }

    @Test("restoring refuses a missing or impossible momentum product, misshapen or foreign tensors, and changes nothing")
    func restoreRefusesBadState() throws {
        let parameter = Parameter(name: "weight", value: Tensor(shape: [3]), isWeight: true)
        let nadam = try NAdam(parameters: [parameter], hyperparameters: NAdamHyperparameters())
        let good: [String: Tensor] = [
            "step": Tensor(shape: [], values: [2]), "0.mu_product": Tensor(shape: [], values: [0.2]),
            "0.exp_avg": Tensor(shape: [3]), "0.exp_avg_sq": Tensor(shape: [3]),
        ]
        var missing = good
        missing["0.mu_product"] = nil
        #expect(throws: OptimizerError(field: "state.0.mu_product", message: "is missing")) { try nadam.restoreState(from: missing) }
        var one = good
        one["0.mu_product"] = Tensor(shape: [], values: [1])
        #expect(throws: OptimizerError(field: "state.0.mu_product", message: "must hold one number in [0, 1), got Tensor[][1.0]")) {
            try nadam.restoreState(from: one)
        }
        var vector = good
        vector["0.mu_product"] = Tensor(shape: [2], values: [0.2, 0.2])
        #expect(throws: OptimizerError.self) { try nadam.restoreState(from: vector) }
        var misshapen = good
        misshapen["0.exp_avg_sq"] = Tensor(shape: [4])
        #expect(throws: OptimizerError(field: "state.0.exp_avg_sq", message: "has shape [4], parameter 0 (weight) has shape [3]")) {
            try nadam.restoreState(from: misshapen)
        }
        var foreign = good
        foreign["1.mu_product"] = Tensor(shape: [], values: [0.2])
        #expect(throws: OptimizerError(field: "state.1.mu_product", message: "is not part of this optimizer's state")) {
            try nadam.restoreState(from: foreign)
        }
        #expect(nadam.stateTensors().isEmpty)
        #expect(nadam.stepCount == 0)

        try nadam.restoreState(from: good)
        #expect(nadam.stepCount == 2)
        #expect(nadam.stateTensors()["0.mu_product"]?.array == [0.2])
        #expect(Set(nadam.stateTensors().keys) == Set(good.keys))
    }

    @Test("the learning rate a schedule sets is used by the next step")
    func learningRateChanges() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [1], values: [1]), isWeight: true)
        let nadam = try NAdam(parameters: [parameter], hyperparameters: NAdamHyperparameters(lr: 0.1))
        parameter.gradient.fill(1)
        nadam.learningRate = 0.01
        nadam.step()
        let mu1 = 0.9 * (1 - 0.5 * pow(0.96, 0.004)), mu2 = 0.9 * (1 - 0.5 * pow(0.96, 0.008))
        #expect(abs(parameter.value[0] - Float(1 - 0.01 * (1 + mu2 * 0.1 / (1 - mu1 * mu2)))) < 1e-6)
        #expect(nadam.hyperparameters.lr == 0.1)
    }
}
