import Foundation
import ReferenceFixtures
import Testing

/// The test problems themselves, checked before any optimizer relies on them.
@Suite("Reference problems")
struct ReferenceProblemTests {
    @Test("each problem's loss reproduces torch's loss along torch's trajectory")
    func losses() throws {
        let cases = try OptimizerCase.all()
        #expect(!cases.isEmpty, "no cases found in \(ReferenceFixtures.directory.path)")
        for testCase in cases {
            for (x, expected) in zip(testCase.trajectory, testCase.losses) {
                let loss = testCase.problem.loss(x)
                #expect(abs(loss - expected) <= 1e-9 * max(1, abs(expected)), "\(testCase): \(loss) vs \(expected)")
            }
        }
    }

    @Test("each problem's closed-form gradient agrees with central differences")
    func gradients() throws {
        for testCase in try OptimizerCase.all() where testCase.optimizer == "sgd" {
            for x in [testCase.x0, testCase.trajectory[testCase.trajectory.count / 2]] {
                let gradient = testCase.problem.gradient(x)
                for j in x.indices {
                    let h = 1e-6
                    var plus = x, minus = x
                    plus[j] += h
                    minus[j] -= h
                    let numeric = (testCase.problem.loss(plus) - testCase.problem.loss(minus)) / (2 * h)
                    #expect(abs(numeric - gradient[j]) <= 1e-5 * max(1, abs(gradient[j])), "\(testCase) ∂/∂x\(j)")
                }
            }
        }
    }
}
