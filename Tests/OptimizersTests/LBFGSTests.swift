import Foundation
import Optimizers
import Tensors
import Testing

@Suite("LBFGSHyperparameters")
struct LBFGSHyperparametersTests {
    @Test("the defaults are torch's and valid")
    func defaults() {
        let defaults = LBFGSHyperparameters()
        #expect(defaults == LBFGSHyperparameters(
            lr: 1, maxIter: 20, maxEval: nil, toleranceGrad: 1e-7, toleranceChange: 1e-9, historySize: 100, lineSearchFn: nil))
        #expect(defaults.resolvedMaxEval == 25)
        #expect(LBFGSHyperparameters(maxIter: 4).resolvedMaxEval == 5)
        #expect(LBFGSHyperparameters(maxIter: 4, maxEval: 9).resolvedMaxEval == 9)
        #expect(defaults.problems.isEmpty)
        #expect(LBFGSHyperparameters(lineSearchFn: "strong_wolfe").problems.isEmpty)
    }

    @Test("an unknown line search is refused, naming line_search_fn and the choices")
    func lineSearch() {
        #expect(throws: OptimizerError(field: "line_search_fn", message: #"must be "strong_wolfe" or null, got "backtracking""#)) {
            try LBFGSHyperparameters(lineSearchFn: "backtracking").validate()
        }
    }

    @Test("counts below 1, negative tolerances and a non-positive lr are refused, naming the field")
    func invalidValues() {
        #expect(LBFGSHyperparameters(lr: 0).problems == [OptimizerError(field: "lr", message: "must be > 0, got 0.0")])
        #expect(LBFGSHyperparameters(maxIter: 0).problems == [OptimizerError(field: "max_iter", message: "must be ≥ 1, got 0")])
        #expect(LBFGSHyperparameters(maxEval: -2).problems == [OptimizerError(field: "max_eval", message: "must be ≥ 1, got -2")])
        #expect(LBFGSHyperparameters(toleranceGrad: -1e-7).problems == [
            OptimizerError(field: "tolerance_grad", message: "must be ≥ 0, got -1e-07"),
        ])
        #expect(LBFGSHyperparameters(toleranceChange: .nan).problems.map(\.field) == ["tolerance_change"])
        #expect(LBFGSHyperparameters(historySize: 0).problems.map(\.field) == ["history_size"])
    }

    @Test("problems lists every invalid field at once, in field order")
    func everyProblem() {
        let hyperparameters = LBFGSHyperparameters(
            lr: -1, maxIter: 0, maxEval: 0, toleranceGrad: -1, toleranceChange: -1, historySize: 0, lineSearchFn: "armijo")
        #expect(hyperparameters.problems.map(\.field) == [
            "lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size", "line_search_fn",
        ])
    }

    @Test("the optimizer's initializer validates the hyperparameters")
    func initializerValidates() {
        let parameter = Parameter(name: "w", value: Tensor(shape: [2]), isWeight: true)
        #expect(throws: OptimizerError(field: "history_size", message: "must be ≥ 1, got 0")) {
            try LBFGS(parameters: [parameter], hyperparameters: LBFGSHyperparameters(historySize: 0))
        }
        #expect(throws: OptimizerError(field: "max_iter", message: "must be ≥ 1, got 0")) {
            try LBFGS(dimension: 3, hyperparameters: LBFGSHyperparameters(maxIter: 0))
        }
        #expect(throws: OptimizerError.self) { try LBFGS(parameters: [parameter, parameter], hyperparameters: LBFGSHyperparameters()) }
    }

    @Test("JSON uses torch's names, missing keys take the defaults, and unset options encode as null")
    func coding() throws {
        let json = #"{"lr": 0.5, "max_iter": 4, "history_size": 5, "line_search_fn": "strong_wolfe", "tolerance_grad": 1e-9}"#
        let decoded = try JSONDecoder().decode(LBFGSHyperparameters.self, from: Data(json.utf8))
        #expect(decoded == LBFGSHyperparameters(lr: 0.5, maxIter: 4, toleranceGrad: 1e-9, historySize: 5, lineSearchFn: "strong_wolfe"))
        #expect(try JSONDecoder().decode(LBFGSHyperparameters.self, from: Data("{}".utf8)) == LBFGSHyperparameters())
        #expect(try JSONDecoder().decode(LBFGSHyperparameters.self, from: Data(#"{"line_search_fn": null}"#.utf8)) == LBFGSHyperparameters())

        let encoded = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(LBFGSHyperparameters())) as? [String: Any])
        #expect(Set(encoded.keys) == ["lr", "max_iter", "max_eval", "tolerance_grad", "tolerance_change", "history_size", "line_search_fn"])
        #expect(encoded["line_search_fn"] is NSNull)
        #expect(encoded["max_eval"] is NSNull)
        #expect(try JSONDecoder().decode(LBFGSHyperparameters.self, from: JSONEncoder().encode(decoded)) == decoded)
    }
}

@Suite("LBFGS")
struct LBFGSTests {
    static let kinds = ["quadratic", "rosenbrock", "logistic"]
    static let lineSearches = ["none", "strong_wolfe"]

    static func lbfgsCase(kind: String, lineSearch: String) throws -> (OptimizerCase, LBFGSHyperparameters) {
        let matches: (LBFGSHyperparameters) -> Bool = { ($0.lineSearchFn ?? "none") == lineSearch }
        return try #require(
            try OptimizerCase.cases("lbfgs", as: LBFGSHyperparameters.self, where: matches).first { $0.0.problem.kind == kind },
            "no lbfgs case with line search \(lineSearch) on \(kind) in optimizers.json")
    }

    static func make(_ hyperparameters: LBFGSHyperparameters) -> (OptimizerSubject) throws -> any SecondOrderOptimizer {
        { subject in
            switch subject {
            case .parameters(let parameters): try LBFGS(parameters: parameters, hyperparameters: hyperparameters)
            case .dimension(let dimension): try LBFGS(dimension: dimension, hyperparameters: hyperparameters)
            }
        }
    }

    @Test(
        "every lbfgs case of the reference file follows torch's trajectory on a Float64 vector within 1e-4",
        arguments: kinds, lineSearches)
    func float64Trajectory(kind: String, lineSearch: String) throws {
        let (testCase, hyperparameters) = try Self.lbfgsCase(kind: kind, lineSearch: lineSearch)
        let (trajectory, _) = try runSecondOrder(
            testCase.problem, from: testCase.x0, steps: testCase.trajectory.count, path: .float64Vector,
            make: Self.make(hyperparameters))
        let error = Float64TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase), Float64 vector: \(error)")
        #expect(error.isWithin(float64TrajectoryTolerance), "\(testCase): \(error)")
    }

    @Test(
        "the quadratic and logistic lbfgs cases follow torch's trajectory with Float32 parameters within 1e-3",
        arguments: ["quadratic", "logistic"], lineSearches)
    func float32Trajectory(kind: String, lineSearch: String) throws {
        let (testCase, hyperparameters) = try Self.lbfgsCase(kind: kind, lineSearch: lineSearch)
        let (trajectory, _) = try runSecondOrder(
            testCase.problem, from: testCase.x0, steps: testCase.trajectory.count, path: .float32Parameters,
            make: Self.make(hyperparameters))
        let error = Float64TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase), Float32 parameters: \(error)")
        #expect(error.isWithin(trajectoryTolerance), "\(testCase): \(error)")
    }

    /// Why the Rosenbrock cases are held to 1e-4 on the Float64 path only: their trajectories amplify
    /// rounding by 10⁴–10⁶ within a step. torch's own Float64 computation, changed only in that the
    /// loss and gradient are taken at the Float32 roundings of its points (what Float32 parameters
    /// mean), already leaves the 1e-3 band; without a line search so does merely starting from the
    /// Float32 rounding of x0. The Float32 run still makes the same progress as torch's.
    @Test(
        "on Rosenbrock, rounding only the points the loss sees to Float32 moves torch's trajectory beyond 1e-3",
        arguments: lineSearches)
    func rosenbrockAmplifiesFloat32Rounding(lineSearch: String) throws {
        let (testCase, hyperparameters) = try Self.lbfgsCase(kind: "rosenbrock", lineSearch: lineSearch)
        let steps = testCase.trajectory.count
        let problem = testCase.problem

        func runFloat64(from x0: [Double], roundingPoints: Bool) throws -> Float64TrajectoryError {
            let lbfgs = try LBFGS(dimension: x0.count, hyperparameters: hyperparameters)
            var x = x0
            var trajectory: [[Double]] = []
            for _ in 0..<steps {
                lbfgs.step(&x) { point, gradient in
                    let seen = point.map { roundingPoints ? Double(Float($0)) : $0 }
                    for (j, value) in problem.gradient(seen).enumerated() { gradient[j] = value }
                    return problem.loss(seen)
                }
                trajectory.append(x)
            }
            return Float64TrajectoryError(trajectory, testCase.trajectory)
        }
        let roundedPoints = try runFloat64(from: testCase.x0, roundingPoints: true)
        let roundedStart = try runFloat64(from: testCase.x0.map { Double(Float($0)) }, roundingPoints: false)
        let (float32Trajectory, _) = try runSecondOrder(
            problem, from: testCase.x0, steps: steps, path: .float32Parameters, make: Self.make(hyperparameters))
        let float32 = Float64TrajectoryError(float32Trajectory, testCase.trajectory)
        print("""
            \(testCase): Float64 with Float32-rounded evaluation points: \(roundedPoints); \
            Float64 from the Float32-rounded x0: \(roundedStart); Float32 parameters: \(float32); \
            final loss \(problem.loss(float32Trajectory[steps - 1]).formatted3) vs torch's \(testCase.losses[steps - 1].formatted3)
            """)
        #expect(!roundedPoints.isWithin(trajectoryTolerance))
        if lineSearch == "none" { #expect(!roundedStart.isWithin(trajectoryTolerance)) }
        #expect(problem.loss(float32Trajectory[steps - 1]) <= 1.02 * testCase.losses[steps - 1] + 1e-9)
    }

    @Test("every lbfgs case of the reference file is one of the cases tested above")
    func coverage() throws {
        let cases = try OptimizerCase.all().filter { $0.optimizer == "lbfgs" }
        #expect(cases.count == Self.kinds.count * Self.lineSearches.count)
        for testCase in cases {
            let hyperparameters = try testCase.decodeHyperparameters(as: LBFGSHyperparameters.self)
            #expect(hyperparameters.problems.isEmpty, "\(testCase)")
            #expect(Self.lineSearches.contains(hyperparameters.lineSearchFn ?? "none"), "\(testCase)")
        }
    }

    @Test("a shorter history (2 instead of 5) is caught by the comparison on Rosenbrock")
    func wrongHistoryIsCaught() throws {
        let (testCase, hyperparameters) = try Self.lbfgsCase(kind: "rosenbrock", lineSearch: "none")
        var wrong = hyperparameters
        wrong.historySize = 2
        let (trajectory, _) = try runSecondOrder(
            testCase.problem, from: testCase.x0, steps: testCase.trajectory.count, path: .float64Vector, make: Self.make(wrong))
        let error = Float64TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase) run with history_size 2: \(error)")
        #expect(!error.isWithin(trajectoryTolerance))
    }

    /// (Not on the logistic case: with or without the line search its 20 iterations per step reach
    /// the same minimizer, within 2e-4.)
    @Test("the strong-Wolfe Rosenbrock case run without the line search is caught by the comparison")
    func missingLineSearchIsCaught() throws {
        let (testCase, hyperparameters) = try Self.lbfgsCase(kind: "rosenbrock", lineSearch: "strong_wolfe")
        var wrong = hyperparameters
        wrong.lineSearchFn = nil
        let (trajectory, _) = try runSecondOrder(
            testCase.problem, from: testCase.x0, steps: testCase.trajectory.count, path: .float64Vector, make: Self.make(wrong))
        let error = Float64TrajectoryError(trajectory, testCase.trajectory)
        print("\(testCase) run without line search: \(error)")
        #expect(!error.isWithin(trajectoryTolerance))
    }

    @Test("a vector split into several parameters follows the same trajectory as one parameter")
    func splitParameters() throws {
        for lineSearch in Self.lineSearches {
            let (testCase, hyperparameters) = try Self.lbfgsCase(kind: "logistic", lineSearch: lineSearch)
            let whole = try runSecondOrder(
                testCase.problem, from: testCase.x0, steps: 5, path: .float32Parameters, make: Self.make(hyperparameters))
            let split = try runSecondOrder(
                testCase.problem, from: testCase.x0, steps: 5, path: .float32Parameters, split: [2, 1, 2],
                make: Self.make(hyperparameters))
            #expect(whole.trajectory == split.trajectory, "\(testCase)")
        }
    }

    @Test("without a line search each iteration but the last calls the closure once, and max_eval ends the step")
    func evaluationCounts() throws {
        let x0 = [-1.2, 1.0]
        let parameters = makeParameters(x0.map { Float($0) }, split: nil)
        let closure = makeClosure(.rosenbrock, parameters)
        let lbfgs = try LBFGS(parameters: parameters, hyperparameters: LBFGSHyperparameters(lr: 0.001, maxIter: 6))
        lbfgs.step(closure)
        // 1 evaluation at the start, then one after each of iterations 1…5; none after the 6th.
        #expect(lbfgs.iterationCount == 6)
        #expect(lbfgs.evaluationCount == 6)

        let limited = try LBFGS(
            parameters: makeParameters(x0.map { Float($0) }, split: nil),
            hyperparameters: LBFGSHyperparameters(lr: 0.001, maxIter: 10, maxEval: 4))
        limited.step(makeClosure(.rosenbrock, limited.parameters))
        #expect(limited.evaluationCount == 4)
        #expect(limited.iterationCount == 3)
    }

    @Test("a step at a point whose gradient is within tolerance_grad evaluates once and moves nothing")
    func optimalPoint() throws {
        let parameters = makeParameters([1, 1, 1], split: nil)
        let lbfgs = try LBFGS(parameters: parameters, hyperparameters: LBFGSHyperparameters(lineSearchFn: "strong_wolfe"))
        let loss = lbfgs.step(makeClosure(.rosenbrock, parameters))
        #expect(loss == 0)
        #expect(lbfgs.evaluationCount == 1)
        #expect(lbfgs.iterationCount == 0)
        #expect(parameters[0].value.array == [1, 1, 1])
    }

    @Test("step returns the loss before the step, and the parameters hold the new point")
    func returnsLossBefore() throws {
        let testCase = try secondOrderCase("lbfgs", kind: "quadratic")
        let parameters = makeParameters(testCase.x0.map { Float($0) }, split: nil)
        let lbfgs = try LBFGS(parameters: parameters, hyperparameters: LBFGSHyperparameters(maxIter: 4, historySize: 5))
        let closure = makeClosure(testCase.problem, parameters)
        let before = testCase.problem.loss(testCase.x0.map { Double(Float($0)) })
        #expect(abs(lbfgs.step(closure) - before) <= 1e-12 * abs(before))
        let after = testCase.problem.loss(parameters[0].value.array.map { Double($0) })
        #expect(after < before)
        #expect(abs(lbfgs.step(closure) - after) <= 1e-12 * abs(after))
    }

    @Test("parameters changed between steps (a restored checkpoint) are where the next step starts")
    func externalChange() throws {
        let problem = Problem.rosenbrock
        let parameters = makeParameters([-1.2, 1], split: nil)
        let lbfgs = try LBFGS(parameters: parameters, hyperparameters: LBFGSHyperparameters(lineSearchFn: "strong_wolfe"))
        let closure = makeClosure(problem, parameters)
        lbfgs.step(closure)
        parameters[0].value[0] = 3
        parameters[0].value[1] = 3
        let loss = lbfgs.step(closure)
        #expect(loss == problem.loss([3, 3]))
    }

    @Test("L-BFGS with strong Wolfe reaches Rosenbrock's minimum and fits the logistic regression", arguments: EvaluationPath.allCases)
    func convergence(path: EvaluationPath) throws {
        let hyperparameters = LBFGSHyperparameters(toleranceGrad: 1e-12, toleranceChange: 1e-15, historySize: 10, lineSearchFn: "strong_wolfe")
        for (name, problem, x0) in [
            ("Rosenbrock 2-D", Problem.rosenbrock, [-1.2, 1.0]),
            ("Rosenbrock 3-D", Problem.rosenbrock, try secondOrderCase("lbfgs", kind: "rosenbrock").x0),
            ("logistic", overlappingLogisticProblem(), [0.0, 0, 0, 0]),
        ] {
            let (trajectory, optimizer) = try runSecondOrder(problem, from: x0, steps: 10, path: path, make: Self.make(hyperparameters))
            let x = try #require(trajectory.last)
            let lbfgs = try #require(optimizer as? LBFGS)
            print("L-BFGS on \(name), \(path): max|g| \(gradientNorm(problem, at: x).formatted3), \(name.hasPrefix("Rosenbrock") ? "max|x − 1| \(distanceToOnes(x).formatted3), " : "")\(lbfgs.iterationCount) iterations, \(lbfgs.evaluationCount) evaluations")
            if name.hasPrefix("Rosenbrock") {
                #expect(distanceToOnes(x) <= 1e-6, "\(name) \(path): \(x)")
            } else {
                #expect(gradientNorm(problem, at: x) <= (path == .float64Vector ? 1e-8 : 1e-6), "\(name) \(path)")
            }
        }
    }

    @Test("L-BFGS accepts up to ten million parameters")
    func parameterLimit() {
        #expect(LBFGS.parameterLimit == 10_000_000)
        #expect(LBFGS.parameterLimitProblem(parameterCount: 10_000_000, method: "lbfgs") == nil)
        #expect(LBFGS.parameterLimitProblem(parameterCount: 10_000_001, method: "lbfgs") == OptimizerError(
            field: "type", message: "lbfgs accepts models of at most 10000000 parameters, this one has 10000001"))
    }
}
