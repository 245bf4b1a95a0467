import Tensors

/// `max_pool2d`: y = the largest x in each window, torch's MaxPool2d (floor mode, padding counts as −∞).
///
/// Shapes (legend): N batch, C channels, H×W input plane, kh×kw window, sh×sw stride (default = kernel),
/// ph×pw padding on each side, OH×OW output plane (OH = ⌊(H + 2·ph − kh) / sh⌋ + 1).
///   x (N, C, H, W) → y (N, C, OH, OW); argmax a (N, C, OH, OW): the index in the H×W plane of each maximum.
/// Backward routes each dy to its argmax: dx[a] += dy. Ties go to the first maximum in row-major window
/// order and a NaN wins (torch's rule).
public final class MaxPool2D: Layer {
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let kernel: (height: Int, width: Int)
    public let stride: (height: Int, width: Int)
    public let padding: (height: Int, width: Int)
    public var parameters: [Parameter] { [] }

    private let geometry: WindowGeometry
    private var output: Tensor?
    private var inputGradient: Tensor?
    private var argmax = IndexBuffer()
    private var inputCount = 0  // samples of the last forward

    /// - `stride`: nil is the kernel size (torch's default). `padding` is at most half the kernel (torch's rule).
    /// Check a user's configuration with `configurationProblem` first: the initializer traps on a bad one.
    public init(inputShape: [Int], kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0)) {
        let stride = stride ?? kernel
        if let problem = MaxPool2D.configurationProblem(inputShape: inputShape, kernel: kernel, stride: stride, padding: padding) {
            preconditionFailure("max_pool2d: \(problem)")
        }
        self.inputShape = inputShape
        self.kernel = (kernel.0, kernel.1)
        self.stride = (stride.0, stride.1)
        self.padding = (padding.0, padding.1)
        geometry = WindowGeometry(inputShape: inputShape, kernel: kernel, stride: stride, padding: padding)
        outputShape = [inputShape[0], geometry.OH, geometry.OW]
    }

    /// Why this configuration cannot be built, or nil when it can.
    public static func configurationProblem(inputShape: [Int], kernel: (Int, Int), stride: (Int, Int)? = nil,
                                            padding: (Int, Int) = (0, 0)) -> String? {
        poolingProblem(inputShape: inputShape, kernel: kernel, stride: stride ?? kernel, padding: padding)
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        let g = geometry, P = g.P, planeIn = g.H * g.W
        precondition(x.count == 0 || x.rowSize == g.C * planeIn, "max_pool2d expects samples of \(inputShape), got \(x.shape)")
        let n = x.rows
        inputCount = n
        let y = ensureTensor(&output, batchSize: n, sampleShape: outputShape)
        let a = argmax.ensure(count: y.count)
        let isTwoByTwo = g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0
        for plane in 0..<(n * g.C) {
            let xPlane = x.pointer + plane * planeIn
            let yPlane = y.pointer + plane * P, aPlane = a + plane * P
            if isTwoByTwo {
                maxPoolTwoByTwo(xPlane, yPlane, aPlane, width: g.W, outputHeight: g.OH, outputWidth: g.OW)
                continue
            }
            for oh in 0..<g.OH {
                let rows = max(0, oh * g.sh - g.ph)..<min(g.H, oh * g.sh - g.ph + g.kh)
                for ow in 0..<g.OW {
                    let columns = max(0, ow * g.sw - g.pw)..<min(g.W, ow * g.sw - g.pw + g.kw)
                    var best = -Float.infinity
                    var at = rows.lowerBound * g.W + columns.lowerBound
                    for ih in rows {
                        for iw in columns {
                            let v = xPlane[ih * g.W + iw]
                            if v > best || v.isNaN { best = v; at = ih * g.W + iw }
                        }
                    }
                    yPlane[oh * g.OW + ow] = best
                    aPlane[oh * g.OW + ow] = Int32(truncatingIfNeeded: at)
                }
            }
        }
        return y
    }

    /// The common 2×2 window with stride 2 over one plane, four outputs at a time and without branches (random
    /// data mispredicts a branch per comparison half the time). Same choice as the general loop: the first
    /// maximum in the order (0,0), (0,1), (1,0), (1,1), and a NaN wins.
    private func maxPoolTwoByTwo(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ a: UnsafeMutablePointer<Int32>,
                                 width W: Int, outputHeight OH: Int, outputWidth OW: Int) {
        let lanes = SIMD4<Int32>(0, 2, 4, 6)
        let right = SIMD4<Int32>(repeating: 1), below = SIMD4<Int32>(repeating: Int32(W)), belowRight = below &+ 1
        for oh in 0..<OH {
            let top = x + 2 * oh * W, bottom = top + W
            let yRow = y + oh * OW, aRow = a + oh * OW
            var ow = 0
            while ow < OW && OW >= 4 {
                ow = min(ow, OW - 4)  // a last, overlapping group of four instead of a scalar tail
                let upper = UnsafeRawPointer(top + 2 * ow).loadUnaligned(as: SIMD8<Float>.self)
                let lower = UnsafeRawPointer(bottom + 2 * ow).loadUnaligned(as: SIMD8<Float>.self)
                var best = upper.evenHalf
                var offset = SIMD4<Int32>(repeating: 0)
                @inline(__always) func challenge(_ v: SIMD4<Float>, _ step: SIMD4<Int32>) {
                    let wins = (v .> best) .| (v .!= v)
                    best.replace(with: v, where: wins)
                    offset.replace(with: step, where: wins)
                }
                challenge(upper.oddHalf, right)
                challenge(lower.evenHalf, below)
                challenge(lower.oddHalf, belowRight)
                UnsafeMutableRawPointer(yRow + ow).storeBytes(of: best, as: SIMD4<Float>.self)
                let corner = SIMD4<Int32>(repeating: Int32(truncatingIfNeeded: 2 * oh * W + 2 * ow)) &+ lanes
                UnsafeMutableRawPointer(aRow + ow).storeBytes(of: corner &+ offset, as: SIMD4<Int32>.self)
                ow += 4
            }
            while ow < OW {
                let i0 = 2 * oh * W + 2 * ow, i1 = i0 + 1, i2 = i0 + W, i3 = i2 + 1
                var best = x[i0], at = i0
                if x[i1] > best || x[i1].isNaN { best = x[i1]; at = i1 }
                if x[i2] > best || x[i2].isNaN { best = x[i2]; at = i2 }
                if x[i3] > best || x[i3].isNaN { best = x[i3]; at = i3 }
                yRow[ow] = best
                aRow[ow] = Int32(truncatingIfNeeded: at)
                ow += 1
            }
        }
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard needsInputGradient else { return nil }
        let g = geometry, P = g.P, planeIn = g.H * g.W
        precondition(dy.count == inputCount * g.C * P, "max_pool2d backward expects dy of \([inputCount] + outputShape), got \(dy.shape)")
        let dx = ensureTensor(&inputGradient, batchSize: inputCount, sampleShape: inputShape)
        dx.zero()
        let a = argmax.pointer
        for plane in 0..<(inputCount * g.C) {
            let dxPlane = dx.pointer + plane * planeIn
            let dyPlane = dy.pointer + plane * P, aPlane = a + plane * P
            for p in 0..<P { dxPlane[Int(aPlane[p])] += dyPlane[p] }
        }
        return dx
    }
}

/// `avg_pool2d`: y = the mean of each window, torch's AvgPool2d (floor mode, count_include_pad = true:
/// padded zeros count in the divisor).
///
/// Shapes (legend): N batch, C channels, H×W input plane, kh×kw window, sh×sw stride (default = kernel),
/// ph×pw padding on each side, OH×OW output plane.
///   x (N, C, H, W) → y (N, C, OH, OW); each window's divisor d is its size clipped to the padded plane
///   (kh·kw in floor mode). Backward spreads dy / d over the window: dx[window] += dy / d.
public final class AvgPool2D: Layer {
    public let inputShape: [Int]
    public let outputShape: [Int]
    public let kernel: (height: Int, width: Int)
    public let stride: (height: Int, width: Int)
    public let padding: (height: Int, width: Int)
    public var parameters: [Parameter] { [] }

    private let geometry: WindowGeometry
    private var output: Tensor?
    private var inputGradient: Tensor?
    private var inputCount = 0

    /// - `stride`: nil is the kernel size (torch's default). `padding` is at most half the kernel (torch's rule).
    public init(inputShape: [Int], kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0)) {
        let stride = stride ?? kernel
        if let problem = AvgPool2D.configurationProblem(inputShape: inputShape, kernel: kernel, stride: stride, padding: padding) {
            preconditionFailure("avg_pool2d: \(problem)")
        }
        self.inputShape = inputShape
        self.kernel = (kernel.0, kernel.1)
        self.stride = (stride.0, stride.1)
        self.padding = (padding.0, padding.1)
        geometry = WindowGeometry(inputShape: inputShape, kernel: kernel, stride: stride, padding: padding)
        outputShape = [inputShape[0], geometry.OH, geometry.OW]
    }

    /// Why this configuration cannot be built, or nil when it can.
    public static func configurationProblem(inputShape: [Int], kernel: (Int, Int), stride: (Int, Int)? = nil,
                                            padding: (Int, Int) = (0, 0)) -> String? {
        poolingProblem(inputShape: inputShape, kernel: kernel, stride: stride ?? kernel, padding: padding)
    }

    /// The window of output (oh, ow) clipped to the plane, and its divisor (torch's count_include_pad).
    @inline(__always)
    private func window(_ oh: Int, _ ow: Int) -> (rows: Range<Int>, columns: Range<Int>, divisor: Float) {
        let g = geometry
        let top = oh * g.sh - g.ph, left = ow * g.sw - g.pw
        let divisor = (min(top + g.kh, g.H + g.ph) - top) * (min(left + g.kw, g.W + g.pw) - left)
        return (max(0, top)..<min(g.H, top + g.kh), max(0, left)..<min(g.W, left + g.kw), Float(divisor))
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        let g = geometry, P = g.P, planeIn = g.H * g.W
        precondition(x.count == 0 || x.rowSize == g.C * planeIn, "avg_pool2d expects samples of \(inputShape), got \(x.shape)")
        let n = x.rows
        inputCount = n
        let y = ensureTensor(&output, batchSize: n, sampleShape: outputShape)
        for plane in 0..<(n * g.C) {
            let xPlane = x.pointer + plane * planeIn, yPlane = y.pointer + plane * P
            for oh in 0..<g.OH {
                for ow in 0..<g.OW {
                    let (rows, columns, divisor) = window(oh, ow)
                    var sum: Float = 0
                    for ih in rows {
                        for iw in columns { sum += xPlane[ih * g.W + iw] }
                    }
                    yPlane[oh * g.OW + ow] = sum / divisor
                }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard needsInputGradient else { return nil }
        let g = geometry, P = g.P, planeIn = g.H * g.W
        precondition(dy.count == inputCount * g.C * P, "avg_pool2d backward expects dy of \([inputCount] + outputShape), got \(dy.shape)")
        let dx = ensureTensor(&inputGradient, batchSize: inputCount, sampleShape: inputShape)
        dx.zero()
        for plane in 0..<(inputCount * g.C) {
            let dxPlane = dx.pointer + plane * planeIn, dyPlane = dy.pointer + plane * P
            for oh in 0..<g.OH {
                for ow in 0..<g.OW {
                    let (rows, columns, divisor) = window(oh, ow)
                    let share = dyPlane[oh * g.OW + ow] / divisor
                    for ih in rows {
                        for iw in columns { dxPlane[ih * g.W + iw] += share }
                    }
                }
            }
        }
        return dx
    }
}

/// `global_avg_pool2d`: the mean of each channel's plane, torch's AdaptiveAvgPool2d(1) followed by flatten.
///
/// Shapes (legend): N batch, C channels, H×W plane.
///   x (N, C, H, W) → y (N, C), y[n, c] = Σ x[n, c] / (H·W); backward dx[n, c, :, :] = dy[n, c] / (H·W).
public final class GlobalAvgPool2D: Layer {
    public let inputShape: [Int]
    public let outputShape: [Int]
    public var parameters: [Parameter] { [] }

    private var output: Tensor?
    private var inputGradient: Tensor?
    private var inputCount = 0

    public init(inputShape: [Int]) {
        if let problem = GlobalAvgPool2D.configurationProblem(inputShape: inputShape) {
            preconditionFailure("global_avg_pool2d: \(problem)")
        }
        self.inputShape = inputShape
        outputShape = [inputShape[0]]
    }

    /// Why this input cannot be pooled, or nil when it can.
    public static func configurationProblem(inputShape: [Int]) -> String? {
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 >= 1 }) else {
            return "needs an input of shape [channels, height, width], got \(inputShape)"
        }
        return nil
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        let C = inputShape[0], planeIn = inputShape[1] * inputShape[2]
        precondition(x.count == 0 || x.rowSize == C * planeIn, "global_avg_pool2d expects samples of \(inputShape), got \(x.shape)")
        let n = x.rows
        inputCount = n
        let y = ensureTensor(&output, batchSize: n, sampleShape: outputShape)
        let scale = 1 / Float(planeIn)
        for plane in 0..<(n * C) { y[plane] = vectorSum(x.pointer + plane * planeIn, count: planeIn) * scale }
        return y
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard needsInputGradient else { return nil }
        let C = inputShape[0], planeIn = inputShape[1] * inputShape[2]
        precondition(dy.count == inputCount * C, "global_avg_pool2d backward expects dy of [\(inputCount), \(C)], got \(dy.shape)")
        let dx = ensureTensor(&inputGradient, batchSize: inputCount, sampleShape: inputShape)
        let scale = 1 / Float(planeIn)
        for plane in 0..<(inputCount * C) {
            (dx.pointer + plane * planeIn).update(repeating: dy[plane] * scale, count: planeIn)
        }
        return dx
    }
}

/// Shared checks of the pooling layers: a valid window, and padding at most half the kernel (torch's rule,
/// which keeps every window over at least one input element).
private func poolingProblem(inputShape: [Int], kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int)) -> String? {
    if let problem = WindowGeometry.problem(inputShape: inputShape, kernel: kernel, stride: stride, padding: padding) {
        return problem
    }
    guard 2 * padding.0 <= kernel.0, 2 * padding.1 <= kernel.1 else {
        return "padding (\(padding.0), \(padding.1)) must be at most half the kernel \(kernel.0)×\(kernel.1)"
    }
    return nil
}

/// Int32 indices a layer owns, grown (never shrunk) to the largest batch: no allocation per batch.
struct IndexBuffer: ~Copyable {
    private(set) var pointer: UnsafeMutablePointer<Int32>
    private var capacity: Int

    init() {
        capacity = 1
        pointer = .allocate(capacity: 1)
    }

    deinit { pointer.deallocate() }

    /// A pointer to at least `count` indices.
    mutating func ensure(count: Int) -> UnsafeMutablePointer<Int32> {
        if count > capacity {
            pointer.deallocate()
            pointer = .allocate(capacity: count)
            capacity = count
        }
        return pointer
    }
}
