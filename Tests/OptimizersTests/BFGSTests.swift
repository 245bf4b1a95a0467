import Foundation
import Optimizers
import Tensors
import Testing

@Suite("BFGSHyperparameters")
struct BFGSHyperparametersTests {
    @Test("the defaults are scipy's (gtol, c1, c2) and torch's L-BFGS (lr, max_iter), and valid")
    func defaults() {
        let defaults = BFGSHyperparameters()
        #expect(defaults == BFGSHyperparameters(lr: 1, maxIter: 20, gtol: 1e-5, c1: 1e-4, c2: 0.9, toleranceChange: 1e-9))
        #expect(defaults.problems.isEmpty)
    }

    @Test("the Wolfe constants must satisfy 0 < c1 < c2 < 1, named by field")
    func wolfeConstants() {
        #expect(BFGSHyperparameters(c1: 0).problems == [OptimizerError(field: "c1", message: "must be in (0.0, 1.0), got 0.0")])
        #expect(BFGSHyperparameters(c1: 0.5, c2: 0.4).problems == [
            OptimizerError(field: "c2", message: "must be in (c1 = 0.5, 1.0), got 0.4"),
        ])
        #expect(BFGSHyperparameters(c2: 1).problems.map(\.field) == ["c2"])
        #expect(BFGSHyperparameters(c1: 0.1, c2: 0.1).problems.map(\.field) == ["c2"])
    }

    @Test("problems lists every invalid field at once, in field order")
    func everyProblem() {
        let hyperparameters = BFGSHyperparameters(lr: .infinity, maxIter: 0, gtol: -1, c1: 2, c2: 2, toleranceChange: -1)
        #expect(hyperparameters.problems.map(\.field) == ["lr", "max_iter", "gtol", "c1", "c2", "tolerance_change"])
    }

    @Test("JSON uses the spec's names and missing keys take the defaults")
    func coding() throws {
        let decoded = try JSONDecoder().decode(BFGSHyperparameters.self, from: Data(#"{"gtol": 1e-8, "max_iter": 50}"#.utf8))
        #expect(decoded == BFGSHyperparameters(maxIter: 50, gtol: 1e-8))
        let encoded = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(decoded)) as? [String: Any])
        #expect(Set(encoded.keys) == ["lr", "max_iter", "gtol", "c1", "c2", "tolerance_change"])
        #expect(try JSONDecoder().decode(BFGSHyperparameters.self, from: JSONEncoder().encode(decoded)) == decoded)
    }

    @Test("the optimizer's initializer validates the hyperparameters")
    func initializerValidates() {
        #expect(throws: OptimizerError(field: "gtol", message: "must be ≥ 0, got -1.0")) {
            try BFGS(dimension: 2, hyperparameters: BFGSHyperparameters(gtol: -1))
        }
    }
}

@Suite("BFGS")
struct BFGSTests {
    static func make(_ hyperparameters: BFGSHyperparameters) -> (OptimizerSubject) throws -> any SecondOrderOptimizer {
        { subject in
            switch subject {
            case .parameters(let parameters): try BFGS(parameters: parameters, hyperparameters: hyperparameters)
            case .dimension(let dimension): try BFGS(dimension: dimension, hyperparameters: hyperparameters)
            }
        }
    }

    /// Steps of `max_iter` 20 until the point stops changing (at most 20 steps).
    static func minimize(
        _ problem: Problem, from x0: [Double], path: EvaluationPath, hyperparameters: BFGSHyperparameters
    ) throws -> (x: [Double], optimizer: BFGS) {
        let (trajectory, optimizer) = try runSecondOrder(problem, from: x0, steps: 20, path: path, make: make(hyperparameters))
        return (try #require(trajectory.last), try #require(optimizer as? BFGS))
    }

    @Test("BFGS reaches (1, 1) on the 2-D Rosenbrock function and (1, 1, 1) on the fixture's 3-D one to 1e-6", arguments: EvaluationPath.allCases)
    func rosenbrock(path: EvaluationPath) throws {
        let starts: [(String, [Double])] = [
            ("2-D from (−1.2, 1)", [-1.2, 1]),
            ("3-D from the fixture's x0", try secondOrderCase("lbfgs", kind: "rosenbrock").x0),
        ]
        for (name, x0) in starts {
            let (x, bfgs) = try Self.minimize(.rosenbrock, from: x0, path: path, hyperparameters: BFGSHyperparameters(gtol: 1e-10))
            print("BFGS on Rosenbrock \(name), \(path): max|x − 1| \(distanceToOnes(x).formatted3), max|g| \(gradientNorm(.rosenbrock, at: x).formatted3), \(bfgs.iterationCount) iterations, \(bfgs.evaluationCount) evaluations, \(bfgs.restartCount) restarts")
            #expect(distanceToOnes(x) <= 1e-6, "\(name), \(path): \(x)")
        }
    }

    @Test("with scipy's gtol 1e-5, one step of 100 iterations stops as soon as max|g| ≤ 1e-5")
    func stopsAtGtol() throws {
        let bfgs = try BFGS(dimension: 2, hyperparameters: BFGSHyperparameters(maxIter: 100))
        var x = [-1.2, 1.0]
        bfgs.step(&x, evaluate: makeFlatObjective(.rosenbrock))
        print("BFGS, Rosenbrock 2-D with gtol 1e-5: \(bfgs.iterationCount) iterations, \(bfgs.evaluationCount) evaluations, max|g| \(gradientNorm(.rosenbrock, at: x).formatted3)")
        #expect(gradientNorm(.rosenbrock, at: x) <= 1e-5)
        #expect(bfgs.iterationCount < 100)
        // scipy's BFGS needs 32 iterations from this start with MINPACK's line search; a comparable count here.
        #expect(bfgs.iterationCount <= 60)
        let iterations = bfgs.iterationCount
        bfgs.step(&x, evaluate: makeFlatObjective(.rosenbrock))
        #expect(bfgs.iterationCount == iterations, "a step at a point within gtol only evaluates")
    }

    @Test("BFGS minimizes the fixture's 5-D quadratic in a handful of iterations")
    func quadratic() throws {
        let testCase = try secondOrderCase("lbfgs", kind: "quadratic")
        guard case .quadratic(let a, let b) = testCase.problem else { Issue.record("not a quadratic"); return }
        let solution = try solveLinearSystem(a, b)
        let (x, bfgs) = try Self.minimize(testCase.problem, from: testCase.x0, path: .float64Vector, hyperparameters: BFGSHyperparameters(gtol: 1e-12))
        let error = zip(x, solution).map { abs($0 - $1) }.max() ?? 0
        print("BFGS on the 5-D quadratic: error \(error.formatted3) after \(bfgs.iterationCount) iterations, \(bfgs.evaluationCount) evaluations")
        #expect(error <= 1e-11)
        // scipy's BFGS: 11 iterations to max|g| ≤ 1e-8 from the same start.
        #expect(bfgs.iterationCount <= 15)
    }

    @Test("BFGS fits a logistic regression with overlapping classes, on both paths", arguments: EvaluationPath.allCases)
    func logisticRegression(path: EvaluationPath) throws {
        let problem = overlappingLogisticProblem()
        let (x, bfgs) = try Self.minimize(problem, from: [0, 0, 0, 0], path: path, hyperparameters: BFGSHyperparameters(gtol: 1e-9))
        let reference = try newtonSolution(problem, dimension: 4)
        let error = zip(x, reference).map { abs($0 - $1) }.max() ?? 0
        print("BFGS, logistic regression, \(path): max|g| \(gradientNorm(problem, at: x).formatted3), distance to Newton's solution \(error.formatted3), \(bfgs.iterationCount) iterations")
        #expect(gradientNorm(problem, at: x) <= (path == .float64Vector ? 1e-9 : 1e-5))
        // The loss is flat near its minimizer (smallest Hessian eigenvalue ≈ 0.01): max|g| 1e-9 ↔ ≈ 1e-7 in x.
        #expect(error <= 1e-6)
    }

    @Test("a vector split into several parameters follows the same trajectory as one parameter")
    func splitParameters() throws {
        let x0 = try secondOrderCase("lbfgs", kind: "rosenbrock").x0
        let whole = try runSecondOrder(.rosenbrock, from: x0, steps: 3, path: .float32Parameters, make: Self.make(BFGSHyperparameters(maxIter: 5)))
        let split = try runSecondOrder(.rosenbrock, from: x0, steps: 3, path: .float32Parameters, split: [1, 2], make: Self.make(BFGSHyperparameters(maxIter: 5)))
        #expect(whole.trajectory == split.trajectory)
    }

    @Test("BFGS accepts at most 5 000 parameters and refuses more, naming the limit")
    func parameterLimit() throws {
        #expect(BFGS.parameterLimit == 5_000)
        #expect(BFGS.parameterLimitProblem(parameterCount: 5_000, method: "bfgs") == nil)
        let tooMany = Parameter(name: "weight", value: Tensor(shape: [5_001]), isWeight: true)
        #expect(throws: OptimizerError(field: "parameters", message: "bfgs accepts models of at most 5000 parameters, this one has 5001")) {
            try BFGS(parameters: [tooMany], hyperparameters: BFGSHyperparameters())
        }
        _ = try BFGS(parameters: [Parameter(name: "weight", value: Tensor(shape: [5_000]), isWeight: true)], hyperparameters: BFGSHyperparameters())
    }
}
