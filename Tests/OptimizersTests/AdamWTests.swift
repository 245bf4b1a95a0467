import Foundation
import Optimizers
import Tensors
import Testing

@Suite("AdamWHyperparameters")
struct AdamWHyperparametersTests {
    @Test("the defaults are torch's, with weight decay 0.01, and valid")
    func defaults() {
        let defaults = AdamWHyperparameters()
        #expect(defaults == AdamWHyperparameters(lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, amsgrad: false))
        #expect(defaults.problems.isEmpty)
    }

    @Test("a learning rate that is not positive is refused with the field and the value")
    func learningRate() {
        #expect(throws: OptimizerError(field: "lr", message: "must be > 0, got 0.0")) {
            try AdamWHyperparameters(lr: 0).validate()
        }
        #expect(AdamWHyperparameters(lr: -1).problems.map(\.field) == ["lr"])
    }

    @Test("each beta must lie in [0, 1), named by its index in betas")
    func betas() {
        #expect(AdamWHyperparameters(beta1: 1).problems == [OptimizerError(field: "betas[0]", message: "must be in [0, 1), got 1.0")])
        #expect(AdamWHyperparameters(beta2: -0.5).problems
            == [OptimizerError(field: "betas[1]", message: "must be in [0, 1), got -0.5")])
        #expect(AdamWHyperparameters(beta1: 0, beta2: 0).problems.isEmpty)
    }

    @Test("negative eps and weight decay are refused, naming the field")
    func negativeValues() {
        #expect(AdamWHyperparameters(eps: -1e-8).problems == [OptimizerError(field: "eps", message: "must be ≥ 0, got -1e-08")])
        #expect(AdamWHyperparameters(weightDecay: -0.01).problems
            == [OptimizerError(field: "weight_decay", message: "must be ≥ 0, got -0.01")])
        #expect(AdamWHyperparameters(weightDecay: .nan).problems.map(\.field) == ["weight_decay"])
    }

    @Test("problems lists every invalid field at once")
    func everyProblem() {
        let hyperparameters = AdamWHyperparameters(lr: -1, beta1: 2, beta2: 1, eps: -1, weightDecay: -1)
        #expect(hyperparameters.problems.map(\.field) == ["lr", "betas[0]", "betas[1]", "eps", "weight_decay"])
    }

    @Test("the optimizer's initializer validates the hyperparameters")
    func initializerValidates() {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        #expect(throws: OptimizerError(field: "betas[1]", message: "must be in [0, 1), got 1.5")) {
            try AdamW(parameters: [parameter], hyperparameters: AdamWHyperparameters(beta2: 1.5))
        }
    }

    @Test("JSON uses the spec's names with betas as a pair, and missing keys take AdamW's defaults")
    func coding() throws {
        let json = #"{"lr": 0.02, "betas": [0.8, 0.99], "weight_decay": 0.1, "amsgrad": true}"#
        let decoded = try JSONDecoder().decode(AdamWHyperparameters.self, from: Data(json.utf8))
        #expect(decoded == AdamWHyperparameters(lr: 0.02, beta1: 0.8, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, amsgrad: true))
        let defaults = try JSONDecoder().decode(AdamWHyperparameters.self, from: Data("{}".utf8))
        #expect(defaults == AdamWHyperparameters())
        #expect(defaults.weightDecay == 0.01)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(AdamWHyperparameters.self, from: Data(#"{"betas": [0.9, 0.99, 0.999]}"#.utf8))
        }

        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(decoded)) as? [String: Any]
        #expect(Set(encoded?.keys.map { $0 } ?? []) == ["lr", "betas", "eps", "weight_decay", "amsgrad"])
        #expect(try JSONDecoder().decode(AdamWHyperparameters.self, from: JSONEncoder().encode(decoded)) == decoded)
    }
}

@Suite("AdamW")
struct AdamWTests {
    static let problems = ["quadratic", "rosenbrock", "logistic"]

    /// The AdamW variants of the reference file; every AdamW case must be exactly one of them.
    static let variants: [(name: String, matches: @Sendable (AdamWHyperparameters) -> Bool)] = [
        ("decoupled weight decay", { $0.weightDecay > 0 && !$0.amsgrad }),
    ]

    static func make(_ hyperparameters: AdamWHyperparameters) -> ([Parameter]) throws -> any Optimizer {
        { try AdamW(parameters: $0, hyperparameters: hyperparameters) }
    }

    static func onlyCase(on problem: String) throws -> (OptimizerCase, AdamWHyperparameters) {
        let matches = variants[0].matches
        return try #require(
            try OptimizerCase.cases("adamw", as: AdamWHyperparameters.self, where: matches).first { $0.0.problem.kind == problem },
            "no AdamW case on \(problem) in optimizers.json")
    }

    @Test("AdamW follows torch's trajectory on every problem", arguments: problems)
    func decoupledWeightDecay(problem: String) throws {
        let (testCase, hyperparameters) = try Self.onlyCase(on: problem)
        let trajectory = try runTrajectory(of: testCase, makeOptimizer: Self.make(hyperparameters))
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase): \(error)")
        #expect(error.isWithinTolerance, "\(testCase): \(error)")
    }

    @Test("every AdamW case of the reference file is one of the variants tested above")
    func coverage() throws {
        let cases = try OptimizerCase.all().filter { $0.optimizer == "adamw" }
        #expect(cases.count == Self.variants.count * Self.problems.count)
        for testCase in cases {
            let hyperparameters = try testCase.decodeHyperparameters(as: AdamWHyperparameters.self)
            #expect(Self.variants.filter { $0.matches(hyperparameters) }.count == 1, "\(testCase)")
        }
    }

    @Test("the same weight decay as Adam's L2 term instead of decoupled is caught by the comparison", arguments: problems)
    func coupledWeightDecayIsCaught(problem: String) throws {
        let (testCase, hyperparameters) = try Self.onlyCase(on: problem)
        let coupled = AdamHyperparameters(
            lr: hyperparameters.lr, beta1: hyperparameters.beta1, beta2: hyperparameters.beta2, eps: hyperparameters.eps,
            weightDecay: hyperparameters.weightDecay, amsgrad: hyperparameters.amsgrad)
        let trajectory = try runTrajectory(of: testCase) { try Adam(parameters: $0, hyperparameters: coupled) }
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase) run as Adam with L2 weight decay: \(error)")
        #expect(!error.isWithinTolerance)
    }

    @Test("AdamW without weight decay is Adam, bit for bit")
    func withoutWeightDecayIsAdam() throws {
        for problem in Self.problems {
            let (testCase, _) = try Self.onlyCase(on: problem)
            let adamw = try runTrajectory(of: testCase, makeOptimizer: Self.make(AdamWHyperparameters(lr: 0.02, weightDecay: 0)))
            let adam = try runTrajectory(of: testCase) { try Adam(parameters: $0, hyperparameters: AdamHyperparameters(lr: 0.02)) }
            #expect(adamw == adam, "\(testCase)")
        }
    }

    @Test("a vector split into two parameters follows the same trajectory (per-parameter state)", arguments: [false, true])
    func splitParameters(amsgrad: Bool) throws {
        for problem in Self.problems {
            var (testCase, hyperparameters) = try Self.onlyCase(on: problem)
            hyperparameters.amsgrad = amsgrad
            let whole = try runTrajectory(of: testCase, makeOptimizer: Self.make(hyperparameters))
            let split = try runTrajectory(of: testCase, split: [2, testCase.x0.count - 2], makeOptimizer: Self.make(hyperparameters))
            #expect(whole == split, "\(testCase)")
        }
    }

    @Test("the state is created on the first step, named like torch's, and kept", arguments: [false, true])
    func lazyState(amsgrad: Bool) throws {
        let weight = Parameter(name: "weight", value: Tensor(shape: [2, 2], values: [1, 2, 3, 4]), isWeight: true)
        let bias = Parameter(name: "bias", value: Tensor(shape: [2], values: [0.5, -0.5]), isWeight: false)
        let adamw = try AdamW(
            parameters: [weight, bias], hyperparameters: AdamWHyperparameters(lr: 0.1, weightDecay: 0.5, amsgrad: amsgrad))
        #expect(adamw.stateTensors().isEmpty)
        #expect(adamw.stepCount == 0)

        weight.gradient.fill(2)
        bias.gradient.fill(-1)
        adamw.step()
        let state = adamw.stateTensors()
        var names: Set<String> = ["step", "0.exp_avg", "0.exp_avg_sq", "1.exp_avg", "1.exp_avg_sq"]
        if amsgrad { names.formUnion(["0.max_exp_avg_sq", "1.max_exp_avg_sq"]) }
        #expect(Set(state.keys) == names)
        #expect(state["step"]?.array == [1])
        // The decay never enters the averages: m = (1 − β1)·g, v = (1 − β2)·g².
        #expect(try #require(state["0.exp_avg"]?.array).allSatisfy { abs($0 - 0.2) < 1e-6 })
        #expect(try #require(state["1.exp_avg_sq"]?.array).allSatisfy { abs($0 - 0.001) < 1e-7 })
        // p·(1 − lr·λ) = 0.95·p, then the first Adam step of ≈ lr against the sign of g.
        let expectedWeight: [Float] = [0.95 - 0.1, 1.9 - 0.1, 2.85 - 0.1, 3.8 - 0.1]
        #expect(zip(weight.value.array, expectedWeight).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(zip(bias.value.array, [0.475 + 0.1, -0.475 + 0.1] as [Float]).allSatisfy { abs($0 - $1) < 1e-5 })

        adamw.step()
        let later = adamw.stateTensors()
        #expect(later["step"]?.array == [2])
        for name in names where name != "step" { #expect(later[name] === state[name], "\(name)") }
    }

    @Test("restoring saved state resumes the trajectory exactly", arguments: [false, true])
    func restoreResumes(amsgrad: Bool) throws {
        for problem in Self.problems {
            var (testCase, hyperparameters) = try Self.onlyCase(on: problem)
            hyperparameters.amsgrad = amsgrad
            let split = [2, testCase.x0.count - 2]
            let uninterrupted = try runTrajectory(of: testCase, split: split, makeOptimizer: Self.make(hyperparameters))
            let resumed = try runTrajectoryResumed(of: testCase, at: 10, split: split, makeOptimizer: Self.make(hyperparameters))
            #expect(resumed == uninterrupted, "\(testCase) amsgrad \(amsgrad)")
        }
    }

    @Test("restoring an empty state starts over as before the first step")
    func restoreEmpty() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        let adamw = try AdamW(parameters: [parameter], hyperparameters: AdamWHyperparameters())
        parameter.gradient.fill(1)
        adamw.step()
        try adamw.restoreState(from: [:])
        #expect(adamw.stepCount == 0)
        #expect(adamw.stateTensors().isEmpty)
    }

    @Test("restoring refuses a bad step count, missing, misshapen or foreign tensors, naming the tensor, and changes nothing")
    func restoreRefusesBadState() throws {
        let parameter = Parameter(name: "weight", value: Tensor(shape: [3]), isWeight: true)
        let adamw = try AdamW(parameters: [parameter], hyperparameters: AdamWHyperparameters(amsgrad: true))
        let good: [String: Tensor] = [
            "step": Tensor(shape: [], values: [4]),
            "0.exp_avg": Tensor(shape: [3]), "0.exp_avg_sq": Tensor(shape: [3]), "0.max_exp_avg_sq": Tensor(shape: [3]),
        ]
        var missing = good
        missing["0.max_exp_avg_sq"] = nil
        #expect(throws: OptimizerError(field: "state.0.max_exp_avg_sq", message: "is missing")) { try adamw.restoreState(from: missing) }
        var zeroStep = good
        zeroStep["step"] = Tensor(shape: [], values: [0])
        #expect(throws: OptimizerError.self) { try adamw.restoreState(from: zeroStep) }
        var misshapen = good
        misshapen["0.exp_avg"] = Tensor(shape: [1, 3])
        #expect(throws: OptimizerError(field: "state.0.exp_avg", message: "has shape [1, 3], parameter 0 (weight) has shape [3]")) {
            try adamw.restoreState(from: misshapen)
        }
        let withoutAMSGrad = try AdamW(parameters: [parameter], hyperparameters: AdamWHyperparameters())
        #expect(throws: OptimizerError(field: "state.0.max_exp_avg_sq", message: "is not part of this optimizer's state")) {
            try withoutAMSGrad.restoreState(from: good)
        }
        #expect(adamw.stateTensors().isEmpty)
        #expect(adamw.stepCount == 0)

        try adamw.restoreState(from: good)
        #expect(adamw.stepCount == 4)
        #expect(Set(adamw.stateTensors().keys) == Set(good.keys))
    }

    @Test("the learning rate a schedule sets drives both the step and the decay")
    func learningRateChanges() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [1], values: [1]), isWeight: true)
        let adamw = try AdamW(parameters: [parameter], hyperparameters: AdamWHyperparameters(lr: 0.1, weightDecay: 1))
        parameter.gradient.fill(1)
        adamw.learningRate = 0.01
        adamw.step()
        #expect(abs(parameter.value[0] - (0.99 - 0.01)) < 1e-6)  // p·(1 − 0.01·1), then ≈ −lr
        #expect(adamw.hyperparameters.lr == 0.1)
    }
}
