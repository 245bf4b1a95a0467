// Line searches along a direction d from a point x, on flat Float64 vectors, shared by the
// second-order optimizers. Legend: φ(t) = f(x + t·d), φ'(t) = ∇f(x + t·d)ᵀd ("gtd");
// f, g, gtd are φ(0), ∇f(x), φ'(0) < 0.

/// What a line search found: the step length t, φ(t), and how many times it called the objective.
/// The gradient at x + t·d is in the buffer the caller passed as `gradientOut`.
struct LineSearchResult {
    let loss: Double
    let t: Double
    let evaluations: Int
}

/// torch's `_cubic_interpolate` (torch/optim/lbfgs.py, from polyinterp.lua): the minimizer of the
/// cubic through (x1, f1) and (x2, f2) with slopes g1 and g2, clamped to `bounds` (default: the
/// interval between x1 and x2); the middle of the bounds when the cubic has no minimizer.
/// Python's `min`/`max` are reproduced, NaN handling included.
func cubicInterpolate(
    _ x1: Double, _ f1: Double, _ g1: Double, _ x2: Double, _ f2: Double, _ g2: Double,
    bounds: (Double, Double)? = nil
) -> Double {
    let (lower, upper) = bounds ?? (x1 <= x2 ? (x1, x2) : (x2, x1))
    let d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    let d2Square = d1 * d1 - g1 * g2
    guard d2Square >= 0 else { return (lower + upper) / 2 }
    let d2 = d2Square.squareRoot()
    let minimizer = x1 <= x2
        ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return pythonMin(pythonMax(minimizer, lower), upper)
}

/// Python's `max(a, b)`: `b` only when `b > a` (so a NaN `a` stays).
@inline(__always) func pythonMax(_ a: Double, _ b: Double) -> Double { b > a ? b : a }
/// Python's `min(a, b)`: `b` only when `b < a`.
@inline(__always) func pythonMin(_ a: Double, _ b: Double) -> Double { b < a ? b : a }

/// torch's `_strong_wolfe` (torch/optim/lbfgs.py, a port of lswolfe.lua), step for step: a
/// bracketing phase that extrapolates by cubic interpolation within [t + 0.01·(t − t_prev), 10·t],
/// then a zoom phase that bisects the bracket by cubic interpolation (kept 10 % away from its
/// ends when progress stalls), until
///
///     φ(t) ≤ f + c1·t·gtd   and   |φ'(t)| ≤ −c2·gtd          (strong Wolfe conditions)
///
/// or `maxEvaluations` evaluations, or a bracket shorter than `toleranceChange / max|d|`.
/// It returns the lowest point of the bracket.
///
/// The buffers for the trial point and the gradients it keeps are allocated once, for one dimension.
final class StrongWolfeLineSearch {
    let c1: Double
    let c2: Double
    let toleranceChange: Double
    let maxEvaluations: Int

    private let trial: FlatBuffer
    /// ∇f at the newest trial point.
    private let gradientNew: FlatBuffer
    /// The previous trial point of the bracketing phase.
    private let gradientPrevious: FlatBuffer
    private let bracketGradients: [FlatBuffer]

    init(dimension: Int, c1: Double = 1e-4, c2: Double = 0.9, toleranceChange: Double = 1e-9, maxEvaluations: Int = 25) {
        self.c1 = c1
        self.c2 = c2
        self.toleranceChange = toleranceChange
        self.maxEvaluations = maxEvaluations
        trial = FlatBuffer(count: dimension)
        gradientNew = FlatBuffer(count: dimension)
        gradientPrevious = FlatBuffer(count: dimension)
        bracketGradients = [FlatBuffer(count: dimension), FlatBuffer(count: dimension)]
    }

    /// Searches from `x` along `d` starting with step `t`; `f`, `g`, `gtd` are φ(0), ∇f(x), φ'(0).
    /// Writes ∇f(x + t·d) of the returned t into `gradientOut`, which may be `g`'s own storage.
    func search(
        x: UnsafeBufferPointer<Double>, t initialStep: Double, d: UnsafeBufferPointer<Double>,
        f: Double, g: UnsafeBufferPointer<Double>, gtd: Double,
        evaluate: FlatLossAndGradient, gradientOut: UnsafeMutableBufferPointer<Double>
    ) -> LineSearchResult {
        let dNorm = Flat.maxAbs(d)
        let gNew = gradientNew.values

        func evaluateAt(_ t: Double) -> Double {
            Flat.step(from: x, t, d, into: trial.values)
            return evaluate(trial.readable, gNew)
        }

        var t = initialStep
        var fNew = evaluateAt(t)
        var evaluations = 1
        var gtdNew = Flat.dot(gradientNew.readable, d)

        // Bracket an interval containing a point satisfying the Wolfe criteria.
        var tPrevious = 0.0, fPrevious = f, gtdPrevious = gtd
        Flat.copy(g, to: gradientPrevious.values)
        var done = false
        var iteration = 0
        // The bracket: one point (done) or two, with φ, φ' and the gradient of each (SIMD2: no heap).
        var bracket = SIMD2<Double>(), bracketF = SIMD2<Double>(), bracketGtd = SIMD2<Double>()
        var bracketCount = 0
        /// 1 where bracket point i's gradient is `g` itself (only after the bracketing phase gives up).
        var bracketHoldsInitialGradient = SIMD2<Int>()

        func bracketPreviousAndNew() {
            bracket = SIMD2(tPrevious, t)
            bracketF = SIMD2(fPrevious, fNew)
            bracketGtd = SIMD2(gtdPrevious, gtdNew)
            Flat.copy(gradientPrevious.readable, to: bracketGradients[0].values)
            Flat.copy(gradientNew.readable, to: bracketGradients[1].values)
            bracketCount = 2
        }

        while iteration < maxEvaluations {
            if fNew > f + c1 * t * gtd || (iteration > 1 && fNew >= fPrevious) {
                bracketPreviousAndNew()
                break
            }
            if abs(gtdNew) <= -c2 * gtd {
                bracket[0] = t
                bracketF[0] = fNew
                Flat.copy(gradientNew.readable, to: bracketGradients[0].values)
                bracketCount = 1
                done = true
                break
            }
            if gtdNew >= 0 {
                bracketPreviousAndNew()
                break
            }
            // Extrapolate by cubic interpolation, at least 1 % beyond t and at most 10·t.
            let minStep = t + 0.01 * (t - tPrevious)
            let maxStep = t * 10
            let current = t
            t = cubicInterpolate(tPrevious, fPrevious, gtdPrevious, t, fNew, gtdNew, bounds: (minStep, maxStep))

            tPrevious = current
            fPrevious = fNew
            Flat.copy(gradientNew.readable, to: gradientPrevious.values)
            gtdPrevious = gtdNew
            fNew = evaluateAt(t)
            evaluations += 1
            gtdNew = Flat.dot(gradientNew.readable, d)
            iteration += 1
        }

        if iteration == maxEvaluations {
            // No bracket found: the interval [0, t], ends as they are (torch leaves bracket_gtd unset;
            // the zoom below does not run in this case, so it is never read).
            bracket = SIMD2(0, t)
            bracketF = SIMD2(f, fNew)
            bracketHoldsInitialGradient = SIMD2(1, 0)
            Flat.copy(gradientNew.readable, to: bracketGradients[1].values)
            bracketCount = 2
        }

        // Zoom: refine the bracket until a point satisfies the conditions.
        var insufficientProgress = false
        var (low, high) = bracketF[0] <= bracketF[bracketCount - 1] ? (0, 1) : (1, 0)
        while !done && iteration < maxEvaluations {
            // The bracket is too small.
            if abs(bracket[1] - bracket[0]) * dNorm < toleranceChange { break }

            t = cubicInterpolate(bracket[0], bracketF[0], bracketGtd[0], bracket[1], bracketF[1], bracketGtd[1])

            // If t is within 10 % of the bracket's length from one of its ends, and either it was already
            // last time or it is at (or beyond) an end, move it to 10 % away from the nearest end.
            let upper = pythonMax(bracket[0], bracket[1]), lower = pythonMin(bracket[0], bracket[1])
            let eps = 0.1 * (upper - lower)
            if pythonMin(upper - t, t - lower) < eps {
                if insufficientProgress || t >= upper || t <= lower {
                    t = abs(t - upper) < abs(t - lower) ? upper - eps : lower + eps
                    insufficientProgress = false
                } else {
                    insufficientProgress = true
                }
            } else {
                insufficientProgress = false
            }

            fNew = evaluateAt(t)
            evaluations += 1
            gtdNew = Flat.dot(gradientNew.readable, d)
            iteration += 1

            if fNew > f + c1 * t * gtd || fNew >= bracketF[low] {
                // Armijo condition not satisfied or not lower than the lowest point: t becomes the high end.
                bracket[high] = t
                bracketF[high] = fNew
                Flat.copy(gradientNew.readable, to: bracketGradients[high].values)
                bracketHoldsInitialGradient[high] = 0
                bracketGtd[high] = gtdNew
                (low, high) = bracketF[0] <= bracketF[1] ? (0, 1) : (1, 0)
            } else {
                if abs(gtdNew) <= -c2 * gtd {
                    done = true  // Wolfe conditions satisfied
                } else if gtdNew * (bracket[high] - bracket[low]) >= 0 {
                    // The old high end becomes the new low end.
                    bracket[high] = bracket[low]
                    bracketF[high] = bracketF[low]
                    Flat.copy(bracketGradients[low].readable, to: bracketGradients[high].values)
                    bracketHoldsInitialGradient[high] = bracketHoldsInitialGradient[low]
                    bracketGtd[high] = bracketGtd[low]
                }
                // The new point becomes the low end.
                bracket[low] = t
                bracketF[low] = fNew
                Flat.copy(gradientNew.readable, to: bracketGradients[low].values)
                bracketHoldsInitialGradient[low] = 0
                bracketGtd[low] = gtdNew
            }
        }

        if bracketHoldsInitialGradient[low] == 1 {
            Flat.copy(g, to: gradientOut)
        } else {
            Flat.copy(bracketGradients[low].readable, to: gradientOut)
        }
        return LineSearchResult(loss: bracketF[low], t: bracket[low], evaluations: evaluations)
    }
}

/// Backtracking from step `t` by halving until the Armijo (sufficient decrease) condition
/// φ(t) ≤ f + c1·t·gtd holds, at most `maxEvaluations` times. Its buffer is allocated once.
///
/// Near a minimum the loss stops resolving the decrease (its rounding is larger than c1·t·|gtd|);
/// a trial is then also accepted when φ(t) ≤ f + `lossNoise` and the gradient's largest element
/// shrinks: the gradient still measures progress that the loss no longer shows.
final class BacktrackingLineSearch {
    let c1: Double
    let maxEvaluations: Int
    private let trial: FlatBuffer

    init(dimension: Int, c1: Double = 1e-4, maxEvaluations: Int = 30) {
        self.c1 = c1
        self.maxEvaluations = maxEvaluations
        trial = FlatBuffer(count: dimension)
    }

    /// The first t = t₀, t₀/2, t₀/4 … accepted (its gradient in `gradientOut`), or nil after
    /// `maxEvaluations` failures (`gradientOut` then holds the last trial's gradient).
    func search(
        x: UnsafeBufferPointer<Double>, t initialStep: Double, d: UnsafeBufferPointer<Double>,
        f: Double, g: UnsafeBufferPointer<Double>, gtd: Double, lossNoise: Double,
        evaluate: FlatLossAndGradient, gradientOut: UnsafeMutableBufferPointer<Double>
    ) -> (result: LineSearchResult?, evaluations: Int) {
        var t = initialStep
        let gradientSize = Flat.maxAbs(g)
        for evaluation in 1...max(1, maxEvaluations) {
            Flat.step(from: x, t, d, into: trial.values)
            let fNew = evaluate(trial.readable, gradientOut)
            // Both comparisons are false for NaN.
            if fNew <= f + c1 * t * gtd
                || (fNew <= f + lossNoise && Flat.maxAbs(UnsafeBufferPointer(gradientOut)) < gradientSize) {
                return (LineSearchResult(loss: fNew, t: t, evaluations: evaluation), evaluation)
            }
            t *= 0.5
        }
        return (nil, max(1, maxEvaluations))
    }
}
