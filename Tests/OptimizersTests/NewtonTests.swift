import Foundation
import Optimizers
import Tensors
import Testing

@Suite("NewtonHyperparameters")
struct NewtonHyperparametersTests {
    @Test("the defaults are lr 1, damping 1e-3, one iteration per step, and valid")
    func defaults() {
        let defaults = NewtonHyperparameters()
        #expect(defaults == NewtonHyperparameters(lr: 1, damping: 1e-3, maxIter: 1, toleranceGrad: 1e-7, toleranceChange: 1e-9))
        #expect(defaults.problems.isEmpty)
        #expect(NewtonHyperparameters(damping: 0).problems.isEmpty)
    }

    @Test("a negative or infinite damping is refused, naming damping")
    func damping() {
        #expect(NewtonHyperparameters(damping: -0.1).problems == [OptimizerError(field: "damping", message: "must be ≥ 0, got -0.1")])
        #expect(NewtonHyperparameters(damping: .infinity).problems == [
            OptimizerError(field: "damping", message: "must be a finite number, got inf"),
        ])
    }

    @Test("problems lists every invalid field at once, in field order")
    func everyProblem() {
        let hyperparameters = NewtonHyperparameters(lr: 0, damping: -1, maxIter: 0, toleranceGrad: -1, toleranceChange: .nan)
        #expect(hyperparameters.problems.map(\.field) == ["lr", "damping", "max_iter", "tolerance_grad", "tolerance_change"])
    }

    @Test("JSON uses the spec's names and missing keys take the defaults")
    func coding() throws {
        let decoded = try JSONDecoder().decode(NewtonHyperparameters.self, from: Data(#"{"damping": 0.01, "lr": 0.5}"#.utf8))
        #expect(decoded == NewtonHyperparameters(lr: 0.5, damping: 0.01))
        let encoded = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(decoded)) as? [String: Any])
        #expect(Set(encoded.keys) == ["lr", "damping", "max_iter", "tolerance_grad", "tolerance_change"])
    }

    @Test("the optimizer's initializer validates the hyperparameters")
    func initializerValidates() {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        #expect(throws: OptimizerError(field: "damping", message: "must be ≥ 0, got -1.0")) {
            try Newton(parameters: [parameter], hyperparameters: NewtonHyperparameters(damping: -1))
        }
    }
}

@Suite("Newton")
struct NewtonTests {
    static func make(_ hyperparameters: NewtonHyperparameters) -> (OptimizerSubject) throws -> any SecondOrderOptimizer {
        { subject in
            switch subject {
            case .parameters(let parameters): try Newton(parameters: parameters, hyperparameters: hyperparameters)
            case .dimension(let dimension): try Newton(dimension: dimension, hyperparameters: hyperparameters)
            }
        }
    }

    static func quadratic() throws -> (problem: Problem, x0: [Double], solution: [Double]) {
        let testCase = try secondOrderCase("lbfgs", kind: "quadratic")
        guard case .quadratic(let a, let b) = testCase.problem else { throw NSError(domain: "not a quadratic", code: 1) }
        return (testCase.problem, testCase.x0, try solveLinearSystem(a, b))
    }

    @Test("undamped Newton solves the fixture's quadratic in one step", arguments: EvaluationPath.allCases)
    func quadraticInOneStep(path: EvaluationPath) throws {
        let (problem, x0, solution) = try Self.quadratic()
        let (trajectory, optimizer) = try runSecondOrder(problem, from: x0, steps: 1, path: path, make: Self.make(NewtonHyperparameters(damping: 0)))
        let x = try #require(trajectory.first)
        let error = zip(x, solution).map { abs($0 - $1) }.max() ?? 0
        let newton = try #require(optimizer as? Newton)
        print("Newton (damping 0), quadratic, one step, \(path): max error \(error.formatted3), \(newton.evaluationCount) evaluations")
        // Float32: the gradients the closure stores are rounded to Float32, and so is the result
        // (1.7e-5 of 1.3: the Hessian's columns are differences of Float32 gradients over 2h ≈ 1e-2.)
        #expect(error <= (path == .float64Vector ? 1e-9 : 1e-4))
        #expect(newton.iterationCount == 1)
        #expect(newton.damping == 0)
    }

    @Test("with the default damping 1e-3 the first step leaves ≈ λ/μ of the error and λ shrinks; three steps solve it")
    func dampedQuadratic() throws {
        let (problem, x0, solution) = try Self.quadratic()
        let (trajectory, optimizer) = try runSecondOrder(problem, from: x0, steps: 3, path: .float64Vector, make: Self.make(NewtonHyperparameters()))
        let errors = trajectory.map { x in zip(x, solution).map { abs($0 - $1) }.max() ?? 0 }
        let initial = zip(x0, solution).map { abs($0 - $1) }.max() ?? 0
        print("Newton (damping 1e-3), quadratic: errors \(initial.formatted3) → \(errors.map(\.formatted3))")
        #expect(errors[0] < 1e-2 * initial)
        #expect(errors[0] > 0)
        #expect(errors[2] <= 1e-9)
        let newton = try #require(optimizer as? Newton)
        #expect(newton.damping < 1e-3 / 9)
    }

    @Test("damped Newton reaches Rosenbrock's minimum from (−1.2, 1) and from the fixture's 3-D start", arguments: EvaluationPath.allCases)
    func rosenbrock(path: EvaluationPath) throws {
        for x0 in [[-1.2, 1], try secondOrderCase("lbfgs", kind: "rosenbrock").x0] {
            let (trajectory, optimizer) = try runSecondOrder(
                .rosenbrock, from: x0, steps: 10, path: path, make: Self.make(NewtonHyperparameters(maxIter: 10)))
            let x = try #require(trajectory.last)
            let newton = try #require(optimizer as? Newton)
            print("Newton on Rosenbrock \(x0.count)-D, \(path): max|x − 1| \(distanceToOnes(x).formatted3), \(newton.iterationCount) iterations, \(newton.evaluationCount) evaluations, λ \(newton.damping.formatted3)")
            #expect(distanceToOnes(x) <= 1e-6, "\(x0.count)-D \(path): \(x)")
        }
    }

    @Test("an indefinite Hessian makes the damping grow until the system is positive definite, and the loss still drops")
    func indefiniteHessian() throws {
        // Rosenbrock's Hessian at (0.5, 1) is [[1200x² − 400y + 2, −400x], [−400x, 200]] = [[−98, −200], [−200, 200]],
        // with eigenvalues ≈ −198 and 300: Cholesky fails until λ > 198.
        var x = [0.5, 1.0]
        let newton = try Newton(dimension: 2, hyperparameters: NewtonHyperparameters(damping: 0))
        let before = Problem.rosenbrock.loss(x)
        newton.step(&x, evaluate: makeFlatObjective(.rosenbrock))
        print("Newton at an indefinite point: loss \(before.formatted3) → \(Problem.rosenbrock.loss(x).formatted3), λ \(newton.damping.formatted3)")
        #expect(Problem.rosenbrock.loss(x) < before)
        #expect(newton.damping > 0)
    }

    @Test("Newton fits a logistic regression with overlapping classes in a few steps, on both paths", arguments: EvaluationPath.allCases)
    func logisticRegression(path: EvaluationPath) throws {
        let problem = overlappingLogisticProblem()
        let (trajectory, optimizer) = try runSecondOrder(problem, from: [0, 0, 0, 0], steps: 8, path: path, make: Self.make(NewtonHyperparameters()))
        let newton = try #require(optimizer as? Newton)
        let gradients = trajectory.map { gradientNorm(problem, at: $0) }
        print("Newton, logistic regression, \(path): max|g| after each step \(gradients.map(\.formatted3)), \(newton.iterationCount) iterations")
        // Quadratic convergence once close: each of the last iterations squares the gradient's size, roughly.
        let converged = try #require(gradients.firstIndex { $0 <= 1e-7 }, "max|g| never reached tolerance_grad 1e-7")
        #expect(converged <= 6)
        #expect(gradients[4] < 1e-3 && gradients[5] < 1e-5)
        // Once within tolerance_grad, a step only evaluates.
        #expect(newton.iterationCount == converged + 1)
    }

    @Test("a Hessian costs two closure calls per parameter")
    func evaluationCount() throws {
        let parameters = makeParameters([0.1, 0.2, 0.3], split: nil)
        let newton = try Newton(parameters: parameters, hyperparameters: NewtonHyperparameters(damping: 0))
        newton.step(makeClosure(.rosenbrock, parameters))
        // 1 at the start, 2·3 for the Hessian, then the line search's trials.
        #expect(newton.evaluationCount >= 8)
        #expect(newton.evaluationCount <= 8 + 30)
    }

    @Test("Newton accepts at most 5 000 parameters and refuses more, naming the limit")
    func parameterLimit() throws {
        #expect(Newton.parameterLimit == 5_000)
        #expect(Newton.parameterLimitProblem(parameterCount: 5_000, method: "newton") == nil)
        let weight = Parameter(name: "weight", value: Tensor(shape: [50, 100]), isWeight: true)
        let bias = Parameter(name: "bias", value: Tensor(shape: [1]), isWeight: false)
        #expect(throws: OptimizerError(field: "parameters", message: "newton accepts models of at most 5000 parameters, this one has 5001")) {
            try Newton(parameters: [weight, bias], hyperparameters: NewtonHyperparameters())
        }
        #expect(throws: OptimizerError.self) { try Newton(dimension: 5_001, hyperparameters: NewtonHyperparameters()) }
    }
}
