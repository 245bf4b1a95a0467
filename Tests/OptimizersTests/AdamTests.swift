import Foundation
import Optimizers
import Tensors
import Testing

@Suite("AdamHyperparameters")
struct AdamHyperparametersTests {
    @Test("the defaults are torch's and valid")
    func defaults() {
        let defaults = AdamHyperparameters()
        #expect(defaults == AdamHyperparameters(lr: 0.001, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, amsgrad: false))
        #expect(defaults.problems.isEmpty)
    }

    @Test("a learning rate that is not positive is refused with the field and the value")
    func learningRate() {
        #expect(throws: OptimizerError(field: "lr", message: "must be > 0, got -0.1")) {
            try AdamHyperparameters(lr: -0.1).validate()
        }
        #expect(AdamHyperparameters(lr: 0).problems.map(\.field) == ["lr"])
    }

    @Test("each beta must lie in [0, 1), named by its index in betas")
    func betas() {
        #expect(AdamHyperparameters(beta1: 1).problems == [OptimizerError(field: "betas[0]", message: "must be in [0, 1), got 1.0")])
        #expect(AdamHyperparameters(beta2: -0.5).problems == [OptimizerError(field: "betas[1]", message: "must be in [0, 1), got -0.5")])
        #expect(AdamHyperparameters(beta2: .nan).problems.map(\.field) == ["betas[1]"])
        #expect(AdamHyperparameters(beta1: 0, beta2: 0).problems.isEmpty)
    }

    @Test("negative eps and weight decay are refused, naming the field")
    func negativeValues() {
        #expect(AdamHyperparameters(eps: -1e-8).problems == [OptimizerError(field: "eps", message: "must be ≥ 0, got -1e-08")])
        #expect(AdamHyperparameters(weightDecay: -0.01).problems.map(\.field) == ["weight_decay"])
        #expect(AdamHyperparameters(weightDecay: .infinity).problems.map(\.field) == ["weight_decay"])
    }

    @Test("problems lists every invalid field at once")
    func everyProblem() {
        let hyperparameters = AdamHyperparameters(lr: -1, beta1: 2, beta2: 1, eps: -1, weightDecay: -1)
        #expect(hyperparameters.problems.map(\.field) == ["lr", "betas[0]", "betas[1]", "eps", "weight_decay"])
    }

    @Test("the optimizer's initializer validates the hyperparameters")
    func initializerValidates() {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        #expect(throws: OptimizerError(field: "betas[1]", message: "must be in [0, 1), got 1.5")) {
            try Adam(parameters: [parameter], hyperparameters: AdamHyperparameters(beta2: 1.5))
        }
    }

    @Test("JSON uses the spec's names with betas as a pair, and missing keys take the defaults")
    func coding() throws {
        let json = #"{"lr": 0.0002, "betas": [0.5, 0.999], "amsgrad": true}"#
        let decoded = try JSONDecoder().decode(AdamHyperparameters.self, from: Data(json.utf8))
        #expect(decoded == AdamHyperparameters(lr: 0.0002, beta1: 0.5, beta2: 0.999, eps: 1e-8, weightDecay: 0, amsgrad: true))
        #expect(try JSONDecoder().decode(AdamHyperparameters.self, from: Data("{}".utf8)) == AdamHyperparameters())
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(AdamHyperparameters.self, from: Data(#"{"betas": [0.9]}"#.utf8))
        }

        let encoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(decoded)) as? [String: Any]
        #expect(Set(encoded?.keys.map { $0 } ?? []) == ["lr", "betas", "eps", "weight_decay", "amsgrad"])
        #expect((encoded?["betas"] as? [Double])?.count == 2)
        #expect(try JSONDecoder().decode(AdamHyperparameters.self, from: JSONEncoder().encode(decoded)) == decoded)
    }
}

@Suite("Adam")
struct AdamTests {
    static let problems = ["quadratic", "rosenbrock", "logistic"]

    /// The Adam variants of the reference file; every Adam case must be exactly one of them.
    static let variants: [(name: String, matches: @Sendable (AdamHyperparameters) -> Bool)] = [
        ("plain", { !$0.amsgrad && $0.weightDecay == 0 }),
        ("amsgrad and weight decay", { $0.amsgrad && $0.weightDecay > 0 }),
    ]

    func checkTrajectory(variant: String, problem: String) throws {
        let matches = try #require(Self.variants.first { $0.name == variant }).matches
        let (testCase, hyperparameters) = try #require(
            try OptimizerCase.cases("adam", as: AdamHyperparameters.self, where: matches).first { $0.0.problem.kind == problem },
            "no Adam \(variant) case on \(problem) in optimizers.json")
        let trajectory = try runTrajectory(of: testCase) {
            try Adam(parameters: $0, hyperparameters: hyperparameters)
        }
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase): \(error)")
        #expect(error.isWithinTolerance, "\(testCase): \(error)")
    }

    @Test("Adam follows torch's trajectory on every problem", arguments: problems)
    func plain(problem: String) throws { try checkTrajectory(variant: "plain", problem: problem) }

    @Test("Adam with AMSGrad and L2 weight decay follows torch's trajectory on every problem", arguments: problems)
    func amsgradAndWeightDecay(problem: String) throws {
        try checkTrajectory(variant: "amsgrad and weight decay", problem: problem)
    }

    @Test("every Adam case of the reference file is one of the variants tested above")
    func coverage() throws {
        let cases = try OptimizerCase.all().filter { $0.optimizer == "adam" }
        #expect(cases.count == Self.variants.count * Self.problems.count)
        for testCase in cases {
            let hyperparameters = try testCase.decodeHyperparameters(as: AdamHyperparameters.self)
            #expect(Self.variants.filter { $0.matches(hyperparameters) }.count == 1, "\(testCase)")
        }
    }

    @Test("a wrong first beta (0.8 instead of 0.9) is caught by the comparison", arguments: problems)
    func wrongBetaIsCaught(problem: String) throws {
        let (testCase, hyperparameters) = try #require(try OptimizerCase.cases(
            "adam", as: AdamHyperparameters.self, where: { $0.beta1 == 0.9 }
        ).first { $0.0.problem.kind == problem })
        var wrong = hyperparameters
        wrong.beta1 = 0.8
        let trajectory = try runTrajectory(of: testCase) { try Adam(parameters: $0, hyperparameters: wrong) }
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase) run with betas[0] 0.8: \(error)")
        #expect(!error.isWithinTolerance)
    }

    /// Not on Rosenbrock: there the 25 steps with and without AMSGrad differ by only 4e-4 relative,
    /// inside the tolerance (the engine itself is within 1e-6 of torch on that case).
    @Test("Adam without AMSGrad on the AMSGrad cases is caught by the comparison", arguments: ["quadratic", "logistic"])
    func missingAMSGradIsCaught(problem: String) throws {
        let (testCase, hyperparameters) = try #require(try OptimizerCase.cases(
            "adam", as: AdamHyperparameters.self, where: { $0.amsgrad }
        ).first { $0.0.problem.kind == problem })
        var wrong = hyperparameters
        wrong.amsgrad = false
        let trajectory = try runTrajectory(of: testCase) { try Adam(parameters: $0, hyperparameters: wrong) }
        let error = TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase) run without amsgrad: \(error)")
        #expect(!error.isWithinTolerance)
    }

    @Test("a vector split into two parameters follows the same trajectory (per-parameter state)")
    func splitParameters() throws {
        for (testCase, hyperparameters) in try OptimizerCase.cases("adam", as: AdamHyperparameters.self, where: { _ in true }) {
            let whole = try runTrajectory(of: testCase) { try Adam(parameters: $0, hyperparameters: hyperparameters) }
            let split = try runTrajectory(of: testCase, split: [2, testCase.x0.count - 2]) {
                try Adam(parameters: $0, hyperparameters: hyperparameters)
            }
            #expect(whole == split, "\(testCase)")
        }
    }

    @Test("the state is created on the first step, named like torch's, and kept", arguments: [false, true])
    func lazyState(amsgrad: Bool) throws {
        let weight = Parameter(name: "weight", value: Tensor(shape: [2, 2], values: [1, 2, 3, 4]), isWeight: true)
        let bias = Parameter(name: "bias", value: Tensor(shape: [2], values: [0.5, -0.5]), isWeight: false)
        let adam = try Adam(parameters: [weight, bias], hyperparameters: AdamHyperparameters(lr: 0.1, amsgrad: amsgrad))
        #expect(adam.stateTensors().isEmpty)
        #expect(adam.stepCount == 0)

        weight.gradient.fill(2)
        bias.gradient.fill(-1)
        adam.step()
        let state = adam.stateTensors()
        var names: Set<String> = ["step", "0.exp_avg", "0.exp_avg_sq", "1.exp_avg", "1.exp_avg_sq"]
        if amsgrad { names.formUnion(["0.max_exp_avg_sq", "1.max_exp_avg_sq"]) }
        #expect(Set(state.keys) == names)
        #expect(state["step"]?.array == [1])
        #expect(adam.stepCount == 1)
        // m = (1 − β1)·g, v = (1 − β2)·g² after the first step.
        let m = try #require(state["0.exp_avg"]?.array)
        let v = try #require(state["1.exp_avg_sq"]?.array)
        #expect(m.allSatisfy { abs($0 - 0.2) < 1e-6 })
        #expect(v.allSatisfy { abs($0 - 0.001) < 1e-7 })
        #expect(state["0.exp_avg"]?.shape == [2, 2])
        // The first step moves every element by ≈ lr against the sign of its gradient.
        #expect(zip(weight.value.array, [0.9, 1.9, 2.9, 3.9] as [Float]).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(zip(bias.value.array, [0.6, -0.4] as [Float]).allSatisfy { abs($0 - $1) < 1e-5 })

        adam.step()
        let later = adam.stateTensors()
        #expect(later["step"]?.array == [2])
        for name in names where name != "step" { #expect(later[name] === state[name], "\(name)") }
    }

    @Test("restoring saved state resumes the trajectory exactly")
    func restoreResumes() throws {
        for (testCase, hyperparameters) in try OptimizerCase.cases("adam", as: AdamHyperparameters.self, where: { _ in true }) {
            let make = { (parameters: [Parameter]) throws -> any Optimizer in
                try Adam(parameters: parameters, hyperparameters: hyperparameters)
            }
            let uninterrupted = try runTrajectory(of: testCase, split: [2, testCase.x0.count - 2], makeOptimizer: make)
            let resumed = try runTrajectoryResumed(of: testCase, at: 10, split: [2, testCase.x0.count - 2], makeOptimizer: make)
            #expect(resumed == uninterrupted, "\(testCase)")
        }
    }

    @Test("restoring an empty state starts over as before the first step")
    func restoreEmpty() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        let adam = try Adam(parameters: [parameter], hyperparameters: AdamHyperparameters())
        parameter.gradient.fill(1)
        adam.step()
        try adam.restoreState(from: [:])
        #expect(adam.stepCount == 0)
        #expect(adam.stateTensors().isEmpty)
    }

    @Test("restoring refuses a bad step count, missing or misshapen buffers, naming the tensor, and changes nothing")
    func restoreRefusesBadState() throws {
        let parameter = Parameter(name: "weight", value: Tensor(shape: [3]), isWeight: true)
        let adam = try Adam(parameters: [parameter], hyperparameters: AdamHyperparameters(amsgrad: true))
        let good: [String: Tensor] = [
            "step": Tensor(shape: [], values: [4]),
            "0.exp_avg": Tensor(shape: [3]), "0.exp_avg_sq": Tensor(shape: [3]), "0.max_exp_avg_sq": Tensor(shape: [3]),
        ]
        var missing = good
        missing["0.max_exp_avg_sq"] = nil
        #expect(throws: OptimizerError(field: "state.0.max_exp_avg_sq", message: "is missing")) {
            try adam.restoreState(from: missing)
        }
        var fractional = good
        fractional["step"] = Tensor(shape: [], values: [2.5])
        #expect(throws: OptimizerError.self) { try adam.restoreState(from: fractional) }
        var misshapen = good
        misshapen["0.exp_avg"] = Tensor(shape: [1, 3])
        #expect(throws: OptimizerError(field: "state.0.exp_avg", message: "has shape [1, 3], parameter 0 (weight) has shape [3]")) {
            try adam.restoreState(from: misshapen)
        }
        #expect(adam.stateTensors().isEmpty)
        #expect(adam.stepCount == 0)

        try adam.restoreState(from: good)
        #expect(adam.stepCount == 4)
        #expect(Set(adam.stateTensors().keys) == Set(good.keys))
    }

    @Test("the learning rate a schedule sets is used by the next step")
    func learningRateChanges() throws {
        let parameter = Parameter(name: "w", value: Tensor(shape: [1], values: [1]), isWeight: true)
        let adam = try Adam(parameters: [parameter], hyperparameters: AdamHyperparameters(lr: 0.1))
        parameter.gradient.fill(1)
        adam.learningRate = 0.01
        adam.step()
        #expect(abs(parameter.value[0] - 0.99) < 1e-6)  // the first Adam step moves by ≈ lr
        #expect(adam.hyperparameters.lr == 0.1)
    }
}
