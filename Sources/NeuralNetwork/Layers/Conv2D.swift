import Tensors

/// `conv2d` (and `depthwise_conv2d`): y = f(conv(x, W) + b), torch's Conv2d (zero padding, floor mode,
/// groups) followed by an optional fused activation.
///
/// Shapes (legend): N batch, C input channels, H×W input plane, O filters (output channels), G groups,
/// Cg = C/G and Og = O/G channels per group, kh×kw kernel, sh×sw stride, ph×pw zero padding on each side
/// (top = bottom = ph, left = right = pw), OH×OW output plane, P = OH·OW, K = Cg·kh·kw taps per output,
/// S samples per im2col chunk.
///   x (N, C, H, W) · W (O, Cg, kh, kw) · b (O) → z (N, O, OH, OW) → y = f(z) (N, O, OH, OW)
///   OH = ⌊(H + 2·ph − kh) / sh⌋ + 1, OW = ⌊(W + 2·pw − kw) / sw⌋ + 1
///
/// Three ways to compute it, picked at init:
/// - im2col (the general case): col (G·K, S·P) holds the input patch of every output position of S samples
///   side by side, then one sgemm per group: z_g (Og, S·P) = W_g (Og, K) · col_g (K, S·P), scattered into z.
///   S = ⌈512 / P⌉ samples (see `samplesPerChunk`); S = 1 writes z in place. Backward per chunk:
///   db += Σ dz, dW_g += dz_g · col_gᵀ (col recomputed unless forward's still holds the whole batch),
///   dcol_g = W_gᵀ · dz_g (over col's buffer), dx = col2im(dcol).
/// - pointwise (1×1, stride 1, no padding): col is x itself, one sgemm per sample and group.
/// - direct (Cg = 1 with G > 1: depthwise, groups = C, O = C·multiplier): K = kh·kw is too small for sgemm.
///   Per input plane, col_c (kh·kw, P), then z_o = b_o + Σ_t W[o, t]·col_c[t] in one SIMD pass; backward
///   dW[o, t] += dz_o · col_c[t], dcol_c[t] = Σ_o W[o, t]·dz_o, dx_c = col2im(dcol_c).
/// At stride 1 with OW = W ("same" width), im2col/col2im move each tap's rows as one long shifted range.
///
/// The activation is fused: for relu, leaky_relu, relu6, elu (f′ readable from y) and tanh, sigmoid,
/// linear the layer keeps only y; for gelu, silu, softplus it also keeps z. relu runs its own SIMD loops.
/// Gradients accumulate; a second backward after one forward gives the same dx and adds the same dW, db.
public final class Conv2D: Layer {
    public let weight: Parameter
    public let bias: Parameter?
    public let activation: ActivationFunction
    /// Per-sample input shape [C, H, W].
    public let inputShape: [Int]
    /// Per-sample output shape [O, OH, OW].
    public let outputShape: [Int]
    public let filters: Int
    public let kernel: (height: Int, width: Int)
    public let stride: (height: Int, width: Int)
    /// Zero padding added on both sides of each axis, like torch's `padding=(ph, pw)`.
    public let padding: (height: Int, width: Int)
    public let groups: Int
    /// Samples per im2col chunk. nil (the default) takes just enough samples for the chunk's sgemm to be 512 output
    /// positions wide, S = ⌈512 / P⌉, within 2 MiB of columns (about one core's L2 cache): on the cnn bench, wider
    /// products gained nothing while the scatter into z and the cache misses cost (the whole batch of 64 in one chunk
    /// was 10–20 % slower). When the whole batch fits in one chunk, backward reuses forward's col.
    public var samplesPerChunk: Int?

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    /// Multiply-adds ×2 of one forward pass for one sample.
    public var flopsPerSample: Int { 2 * filters * geometry.P * (inputShape[0] / groups) * kernel.height * kernel.width }

    private enum Method { case im2col, pointwise, direct }
    private let method: Method
    private let geometry: WindowGeometry
    private let Cg, Og, K: Int
    private let keepsPreActivation: Bool

    // Per-sample sizes of the scratch buffers, as arrays made once (the per-batch path builds no shape array).
    private let columnSampleShape: [Int]  // G·K·P for im2col, kh·kw·P (one plane) for direct
    private let productSampleShape: [Int]  // O·P

    private var input: Tensor?
    private var preActivation: Tensor?  // z, only when f′ needs it (gelu, silu, softplus)
    private var output: Tensor?
    private var columns: Tensor?  // col (G·K, S·P); in backward also dcol
    private var columnsHoldBatch = false  // col holds the whole current batch (one chunk, not yet overwritten)
    private var product: Tensor?  // (O, S·P): z before scattering in forward, dz gathered in backward
    private var inputGradient: Tensor?

    /// Initialized like torch's Conv2d: W, b ~ U(−1/√fan_in, 1/√fan_in), fan_in = (C/groups)·kh·kw
    /// (kaiming_uniform with a = √5).
    ///
    /// - `inputShape`: [C, H, W] of one sample.
    /// - `padding`: zero padding on both sides of each axis (use `samePadding(kernel:)` for "same").
    /// - `groups`: C and `filters` must both be multiples of it; `groups == C` is a depthwise convolution
    ///   (`filters = C · depth multiplier`).
    /// Check a user's configuration with `configurationProblem` first: the initializer traps on a bad one.
    public init(inputShape: [Int], filters: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: (Int, Int) = (0, 0), groups: Int = 1, hasBias: Bool = true,
                activation: ActivationFunction = .linear, generator: inout SeededGenerator) {
        if let problem = Conv2D.configurationProblem(inputShape: inputShape, filters: filters, kernel: kernel,
                                                     stride: stride, padding: padding, groups: groups) {
            preconditionFailure("conv2d: \(problem)")
        }
        self.inputShape = inputShape
        self.filters = filters
        self.kernel = (kernel.0, kernel.1)
        self.stride = (stride.0, stride.1)
        self.padding = (padding.0, padding.1)
        self.groups = groups
        self.activation = activation
        let geometry = WindowGeometry(inputShape: inputShape, kernel: kernel, stride: stride, padding: padding)
        self.geometry = geometry
        outputShape = [filters, geometry.OH, geometry.OW]
        Cg = inputShape[0] / groups
        Og = filters / groups
        K = Cg * kernel.0 * kernel.1
        if Cg == 1 && groups > 1 {
            method = .direct
        } else if kernel == (1, 1) && stride == (1, 1) && padding == (0, 0) {
            method = .pointwise
        } else {
            method = .im2col
        }
        keepsPreActivation = activation.needsInput && !activation.isDifferentiableFromOutput
        columnSampleShape = [(method == .direct ? 1 : groups) * K * geometry.P]
        productSampleShape = [filters * geometry.P]

        let bound = 1 / Float(K).squareRoot()
        let w = Tensor(shape: [filters, Cg, kernel.0, kernel.1])
        for i in 0..<w.count { w[i] = generator.uniform(-bound, bound) }
        weight = Parameter(name: "weight", value: w, isWeight: true)
        if hasBias {
            let b = Tensor(shape: [filters])
            for i in 0..<filters { b[i] = generator.uniform(-bound, bound) }
            bias = Parameter(name: "bias", value: b, isWeight: false)
        } else {
            bias = nil
        }
    }

    /// torch's `padding="same"` at stride 1: (kh − 1)/2, (kw − 1)/2 on each side. Nil for an even kernel
    /// size, which torch pads asymmetrically (one more row/column at the bottom/right): not supported here.
    /// torch also refuses "same" with a stride other than 1.
    public static func samePadding(kernel: (Int, Int)) -> (Int, Int)? {
        guard kernel.0 % 2 == 1, kernel.1 % 2 == 1 else { return nil }
        return ((kernel.0 - 1) / 2, (kernel.1 - 1) / 2)
    }

    /// Why this configuration cannot be built, or nil when it can: what a spec validator reports.
    public static func configurationProblem(inputShape: [Int], filters: Int, kernel: (Int, Int), stride: (Int, Int),
                                            padding: (Int, Int), groups: Int) -> String? {
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 >= 1 }) else {
            return "needs an input of shape [channels, height, width], got \(inputShape)"
        }
        guard filters >= 1 else { return "filters must be at least 1, got \(filters)" }
        guard groups >= 1 else { return "groups must be at least 1, got \(groups)" }
        guard inputShape[0] % groups == 0, filters % groups == 0 else {
            return "groups \(groups) must divide both the input channels \(inputShape[0]) and the filters \(filters)"
        }
        return WindowGeometry.problem(inputShape: inputShape, kernel: kernel, stride: stride, padding: padding)
    }

    // MARK: Forward

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        precondition(x.count == 0 || x.rowSize == geometry.C * geometry.H * geometry.W,
                     "conv2d expects samples of \(inputShape), got \(x.shape)")
        input = x
        let n = x.rows
        let y = ensureTensor(&output, batchSize: n, sampleShape: outputShape)
        let z = keepsPreActivation ? ensureTensor(&preActivation, batchSize: n, sampleShape: outputShape) : y
        columnsHoldBatch = false
        guard n > 0 else { return y }
        switch method {
        case .direct: directForward(x, z, n: n)
        case .pointwise: pointwiseForward(x, z, n: n)
        case .im2col: im2colForward(x, z, n: n)
        }
        switch activation {
        case .linear: break
        case .relu: reluForward(z.pointer, y.pointer, count: y.count)
        default: activation.apply(z.pointer, y.pointer, count: y.count)
        }
        return y
    }

    /// Samples per im2col chunk for a batch of n (see `samplesPerChunk`).
    private func chunkSize(_ n: Int) -> Int {
        if let samplesPerChunk { return max(1, min(n, samplesPerChunk)) }
        let P = geometry.P
        return max(1, min(n, (512 + P - 1) / P, (1 << 19) / max(1, groups * K * P)))
    }

    private func im2colForward(_ x: Tensor, _ z: Tensor, n: Int) {
        let g = geometry, P = g.P, O = filters
        let inputSize = g.C * g.H * g.W, outputSize = O * P
        let S = chunkSize(n), ld = S * P  // col's row stride, whatever the chunk's own size
        let col = ensureTensor(&columns, batchSize: S, sampleShape: columnSampleShape)  // (G·K, S·P)
        let w = weight.value.pointer
        var n0 = 0
        while n0 < n {
            let s = min(S, n - n0), sP = s * P
            for i in 0..<s { im2col(x.pointer + (n0 + i) * inputSize, into: col.pointer + i * P, rowStride: ld) }
            if S == 1 {
                // z_n (O, P) written in place, seeded with b.
                let zn = z.pointer + n0 * outputSize
                if bias != nil { seedWithBias(zn, planes: O, planeSize: P) }
                for gi in 0..<groups {
                    BLAS.gemm(.none, .none, m: Og, n: P, k: K, a: w + gi * Og * K, lda: K, b: col.pointer + gi * K * P, ldb: P,
                              beta: bias == nil ? 0 : 1, c: zn + gi * Og * P, ldc: P)
                }
            } else {
                // product (O, s·P), then scatter each sample's (O, P) block into z, adding b.
                let zt = ensureTensor(&product, batchSize: S, sampleShape: productSampleShape)  // (O, S·P)
                for gi in 0..<groups {
                    BLAS.gemm(.none, .none, m: Og, n: sP, k: K, a: w + gi * Og * K, lda: K, b: col.pointer + gi * K * ld, ldb: ld,
                              c: zt.pointer + gi * Og * ld, ldc: ld)
                }
                let b = bias?.value.pointer
                for i in 0..<s {
                    let zn = z.pointer + (n0 + i) * outputSize
                    for o in 0..<O {
                        let source = zt.pointer + o * ld + i * P, target = zn + o * P
                        if let b { addScalar(b[o], source, target, count: P) } else { target.update(from: source, count: P) }
                    }
                }
            }
            n0 += s
        }
        columnsHoldBatch = S >= n
    }

    private func pointwiseForward(_ x: Tensor, _ z: Tensor, n: Int) {
        let C = geometry.C, P = geometry.P, O = filters
        let w = weight.value.pointer
        for sample in 0..<n {
            let xn = x.pointer + sample * C * P, zn = z.pointer + sample * O * P
            if bias != nil { seedWithBias(zn, planes: O, planeSize: P) }
            for gi in 0..<groups {
                BLAS.gemm(.none, .none, m: Og, n: P, k: Cg, a: w + gi * Og * Cg, lda: Cg,
                          b: xn + gi * Cg * P, ldb: P, beta: bias == nil ? 0 : 1, c: zn + gi * Og * P, ldc: P)
            }
        }
    }

    /// Cg = 1: the Og = O/G outputs of group c read input channel c only. Per plane, col_c (T, P) with T = kh·kw
    /// taps, then z[o, p] = b[o] + Σ_t W[o, t] · col_c[t, p] in one pass over p.
    private func directForward(_ x: Tensor, _ z: Tensor, n: Int) {
        let g = geometry, P = g.P, O = filters, T = g.kh * g.kw, planeIn = g.H * g.W
        let col = ensureTensor(&columns, batchSize: 1, sampleShape: columnSampleShape)  // (T, P)
        let w = weight.value.pointer
        for sample in 0..<n {
            for c in 0..<g.C {
                im2colPlane(x.pointer + (sample * g.C + c) * planeIn, into: col.pointer, rowStride: P)
                for o in (c * Og)..<((c + 1) * Og) {
                    weightedSumOfRows(col.pointer, rowCount: T, rowStride: P, weights: w + o * T, initial: bias?.value[o] ?? 0,
                                      into: z.pointer + (sample * O + o) * P, count: P)
                }
            }
        }
    }

    /// Fills `planes` planes of (…, O, P) with b[o].
    private func seedWithBias(_ target: UnsafeMutablePointer<Float>, planes: Int, planeSize: Int) {
        guard let b = bias?.value.pointer else { return }
        let O = filters
        for plane in 0..<planes { (target + plane * planeSize).update(repeating: b[plane % O], count: planeSize) }
    }

    // MARK: Backward

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard let x = input, let y = output else { preconditionFailure("conv2d backward before forward") }
        precondition(dy.count == y.count, "conv2d backward expects dy of \(y.shape), got \(dy.shape)")
        let n = x.rows
        let dx = needsInputGradient ? ensureTensor(&inputGradient, shape: x.shape) : nil
        guard n > 0 else { return dx }
        // z for f′: the kept pre-activation, or y itself where f′ is readable from y.
        let z = keepsPreActivation ? preActivation! : y
        switch method {
        case .direct: directBackward(x, z, y, dy, dx, n: n)
        case .pointwise: pointwiseBackward(x, z, y, dy, dx, n: n)
        case .im2col: im2colBackward(x, z, y, dy, dx, n: n)
        }
        columnsHoldBatch = false  // col now holds dcol (or one plane's taps)
        return dx
    }

    /// dz (O, P) of one sample: dy·f′(z) into `scratch`, or dy itself (no copy) for a linear layer.
    private func sampleOutputGradient(_ sample: Int, _ z: Tensor, _ y: Tensor, _ dy: Tensor,
                                      scratch: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        let offset = sample * filters * geometry.P
        guard activation != .linear else { return dy.pointer + offset }
        activationBackward(z.pointer + offset, y.pointer + offset, dy.pointer + offset, scratch, count: filters * geometry.P)
        return scratch
    }

    /// dz = dy · f′(z) over `count` elements. relu, the common case, runs a branchless SIMD loop here:
    /// the generic one branches on the sign of each z, which random signs mispredict half the time.
    @inline(__always)
    private func activationBackward(_ z: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>,
                                    _ dz: UnsafeMutablePointer<Float>, count: Int) {
        if activation == .relu {
            reluBackward(y, dy, dz, count: count)
        } else {
            activation.backward(x: z, y: y, dy: dy, dx: dz, count: count)
        }
    }

    /// db[o] += Σ dz[o, 0..<rowLength] for rows `rowStride` apart.
    private func accumulateBiasGradient(_ dz: UnsafePointer<Float>, rowLength: Int, rowStride: Int? = nil) {
        guard let db = bias?.gradient.pointer else { return }
        for o in 0..<filters { db[o] += vectorSum(dz + o * (rowStride ?? rowLength), count: rowLength) }
    }

    private func im2colBackward(_ x: Tensor, _ z: Tensor, _ y: Tensor, _ dy: Tensor, _ dx: Tensor?, n: Int) {
        let g = geometry, P = g.P, O = filters
        let inputSize = g.C * g.H * g.W, outputSize = O * P
        let S = chunkSize(n), ld = S * P
        let col = ensureTensor(&columns, batchSize: S, sampleShape: columnSampleShape)  // (G·K, S·P)
        let dzt = ensureTensor(&product, batchSize: S, sampleShape: productSampleShape)  // (O, S·P)
        let w = weight.value.pointer, dW = weight.gradient.pointer
        // A small dW (conv1 of the cnn bench: 32×9) over a long s·P runs 2–3× slower as one sgemm than sample by
        // sample: OpenBLAS splits it badly over threads. Larger ones gain from the long product.
        let samplesPerWeightProduct = Og * K <= 4096 ? 1 : S
        var n0 = 0
        while n0 < n {
            let s = min(S, n - n0), sP = s * P
            // dz of the chunk as (O, s·P), rows ld apart.
            let dz: UnsafeMutablePointer<Float>
            if S == 1 {
                dz = sampleOutputGradient(n0, z, y, dy, scratch: dzt.pointer)
            } else {
                dz = dzt.pointer
                for i in 0..<s {
                    let offset = (n0 + i) * outputSize
                    for o in 0..<O {
                        let at = offset + o * P, target = dz + o * ld + i * P
                        if activation == .linear {
                            target.update(from: dy.pointer + at, count: P)
                        } else {
                            activationBackward(z.pointer + at, y.pointer + at, dy.pointer + at, target, count: P)
                        }
                    }
                }
            }
            accumulateBiasGradient(dz, rowLength: sP, rowStride: ld)
            if !columnsHoldBatch {
                for i in 0..<s { im2col(x.pointer + (n0 + i) * inputSize, into: col.pointer + i * P, rowStride: ld) }
            }
            // dW_g (Og, K) += dz_g (Og, s·P) · col_gᵀ (s·P, K)
            for gi in 0..<groups {
                for i in Swift.stride(from: 0, to: s, by: samplesPerWeightProduct) {
                    let count = min(samplesPerWeightProduct, s - i)
                    BLAS.gemm(.none, .transposed, m: Og, n: K, k: count * P, a: dz + gi * Og * ld + i * P, lda: ld,
                              b: col.pointer + gi * K * ld + i * P, ldb: ld, beta: 1, c: dW + gi * Og * K, ldc: K)
                }
            }
            if let dx {
                // dcol_g (K, s·P) = W_gᵀ (K, Og) · dz_g (Og, s·P), over col (no longer needed), then col2im.
                for gi in 0..<groups {
                    BLAS.gemm(.transposed, .none, m: K, n: sP, k: Og, a: w + gi * Og * K, lda: K,
                              b: dz + gi * Og * ld, ldb: ld, c: col.pointer + gi * K * ld, ldc: ld)
                }
                columnsHoldBatch = false
                for i in 0..<s { col2im(col.pointer + i * P, rowStride: ld, into: dx.pointer + (n0 + i) * inputSize) }
            }
            n0 += s
        }
    }

    private func pointwiseBackward(_ x: Tensor, _ z: Tensor, _ y: Tensor, _ dy: Tensor, _ dx: Tensor?, n: Int) {
        let C = geometry.C, P = geometry.P, O = filters
        let scratch = ensureTensor(&product, batchSize: 1, sampleShape: productSampleShape)  // (O, P)
        let w = weight.value.pointer, dW = weight.gradient.pointer
        for sample in 0..<n {
            let dz = sampleOutputGradient(sample, z, y, dy, scratch: scratch.pointer)
            accumulateBiasGradient(dz, rowLength: P)
            let xn = x.pointer + sample * C * P
            for gi in 0..<groups {
                // dW_g (Og, Cg) += dz_g (Og, P) · x_gᵀ (P, Cg)
                BLAS.gemm(.none, .transposed, m: Og, n: Cg, k: P, a: dz + gi * Og * P, lda: P,
                          b: xn + gi * Cg * P, ldb: P, beta: 1, c: dW + gi * Og * Cg, ldc: Cg)
                if let dx {
                    // dx_g (Cg, P) = W_gᵀ (Cg, Og) · dz_g (Og, P)
                    BLAS.gemm(.transposed, .none, m: Cg, n: P, k: Og, a: w + gi * Og * Cg, lda: Cg,
                              b: dz + gi * Og * P, ldb: P, c: dx.pointer + sample * C * P + gi * Cg * P, ldc: P)
                }
            }
        }
    }

    /// Per plane c: col_c (T, P) again, then for its outputs o: db[o] += Σ dz_o, dW[o, t] += dz_o · col_c[t];
    /// dcol_c[t] = Σ_o W[o, t] · dz_o over col_c's buffer, and dx_c = col2im(dcol_c).
    private func directBackward(_ x: Tensor, _ z: Tensor, _ y: Tensor, _ dy: Tensor, _ dx: Tensor?, n: Int) {
        let g = geometry, P = g.P, T = g.kh * g.kw, planeIn = g.H * g.W
        let col = ensureTensor(&columns, batchSize: 1, sampleShape: columnSampleShape)  // (T, P)
        let scratch = ensureTensor(&product, batchSize: 1, sampleShape: productSampleShape)  // (O, P)
        let w = weight.value.pointer, dW = weight.gradient.pointer
        for sample in 0..<n {
            let dzSample = sampleOutputGradient(sample, z, y, dy, scratch: scratch.pointer)
            accumulateBiasGradient(dzSample, rowLength: P)
            for c in 0..<g.C {
                let xPlane = x.pointer + (sample * g.C + c) * planeIn
                im2colPlane(xPlane, into: col.pointer, rowStride: P)
                let outputs = (c * Og)..<((c + 1) * Og)
                for o in outputs {
                    for t in 0..<T { dW[o * T + t] += vectorDot(dzSample + o * P, col.pointer + t * P, count: P) }
                }
                guard let dx else { continue }
                for t in 0..<T {
                    let dcol = col.pointer + t * P
                    for (m, o) in outputs.enumerated() {
                        let tap = w[o * T + t], dzo = dzSample + o * P
                        if m == 0 {
                            for p in 0..<P { dcol[p] = tap * dzo[p] }
                        } else {
                            for p in 0..<P { dcol[p] += tap * dzo[p] }
                        }
                    }
                }
                col2imPlane(col.pointer, rowStride: P, into: dx.pointer + (sample * g.C + c) * planeIn)
            }
        }
    }

    // MARK: im2col / col2im

    /// Writes one sample's patches: row (c·kh + ki)·kw + kj of col, entry oh·OW + ow, is
    /// x[c, oh·sh − ph + ki, ow·sw − pw + kj] (0 outside the plane). Rows are `rowStride` apart.
    private func im2col(_ x: UnsafePointer<Float>, into col: UnsafeMutablePointer<Float>, rowStride: Int) {
        let planeIn = geometry.H * geometry.W, taps = geometry.kh * geometry.kw
        for c in 0..<geometry.C {
            im2colPlane(x + c * planeIn, into: col + c * taps * rowStride, rowStride: rowStride)
        }
    }

    /// The adjoint of `im2col`: dx (C, H, W) = dcol's entries added back where they were read (dx is overwritten;
    /// dcol is clobbered).
    private func col2im(_ col: UnsafeMutablePointer<Float>, rowStride: Int, into dx: UnsafeMutablePointer<Float>) {
        let planeIn = geometry.H * geometry.W, taps = geometry.kh * geometry.kw
        for c in 0..<geometry.C {
            col2imPlane(col + c * taps * rowStride, rowStride: rowStride, into: dx + c * planeIn)
        }
    }

    /// `im2col` of one channel plane: kh·kw rows of OH·OW.
    ///
    /// At stride 1 with OW = W ("same" width), the valid outputs of a tap read the plane shifted by a constant
    /// offset: one long copy per tap, then zeros where a row's copy wrapped around the plane's edge.
    private func im2colPlane(_ x: UnsafePointer<Float>, into col: UnsafeMutablePointer<Float>, rowStride: Int) {
        let g = geometry, OW = g.OW, OH = g.OH, sw = g.sw
        let isFlat = g.sh == 1 && sw == 1 && OW == g.W
        var row = col
        for ki in 0..<g.kh {
            let rows = g.validRows(ki)
            for kj in 0..<g.kw {
                defer { row += rowStride }
                let columns = g.validColumns(kj)
                guard !rows.isEmpty, !columns.isEmpty else { row.update(repeating: 0, count: OH &* OW); continue }
                row.update(repeating: 0, count: rows.lowerBound &* OW)
                (row + rows.upperBound &* OW).update(repeating: 0, count: (OH &- rows.upperBound) &* OW)
                let base = columns.lowerBound, count = columns.count
                if isFlat {
                    let start = rows.lowerBound &* OW &+ base, end = (rows.upperBound &- 1) &* OW &+ columns.upperBound
                    (row + start).update(from: x + g.inputIndex(oh: rows.lowerBound, ki: ki, ow: base, kj: kj), count: end &- start)
                    guard count < OW else { continue }
                    for oh in rows {
                        let out = row + oh &* OW
                        for i in 0..<base { out[i] = 0 }
                        for i in columns.upperBound..<OW { out[i] = 0 }
                    }
                    continue
                }
                for oh in rows {
                    let out = row + oh &* OW
                    for i in 0..<base { out[i] = 0 }
                    for i in columns.upperBound..<OW { out[i] = 0 }
                    let xr = x + g.inputIndex(oh: oh, ki: ki, ow: base, kj: kj), target = out + base
                    switch sw {
                    case 1: target.update(from: xr, count: count)
                    case 2: gatherEven(xr, into: target, count: count)
                    default: for i in 0..<count { target[i] = xr[i &* sw] }
                    }
                }
            }
        }
    }

    /// The adjoint of `im2colPlane`: dx (H, W) = Σ over taps of dcol's valid entries added back (dx is
    /// overwritten). At stride 1 with OW = W, one long add per tap after zeroing the entries that wrapped
    /// (dcol is scratch).
    private func col2imPlane(_ col: UnsafeMutablePointer<Float>, rowStride: Int, into dx: UnsafeMutablePointer<Float>) {
        let g = geometry, OW = g.OW, sw = g.sw
        let isFlat = g.sh == 1 && sw == 1 && OW == g.W
        dx.update(repeating: 0, count: g.H &* g.W)
        var row = col
        for ki in 0..<g.kh {
            let rows = g.validRows(ki)
            for kj in 0..<g.kw {
                defer { row += rowStride }
                let columns = g.validColumns(kj)
                guard !rows.isEmpty, !columns.isEmpty else { continue }
                let base = columns.lowerBound, count = columns.count
                if isFlat {
                    if count < OW {
                        for oh in rows {
                            let entries = row + oh &* OW
                            for i in 0..<base { entries[i] = 0 }
                            for i in columns.upperBound..<OW { entries[i] = 0 }
                        }
                    }
                    let start = rows.lowerBound &* OW &+ base, end = (rows.upperBound &- 1) &* OW &+ columns.upperBound
                    add(row + start, into: dx + g.inputIndex(oh: rows.lowerBound, ki: ki, ow: base, kj: kj), count: end &- start)
                    continue
                }
                for oh in rows {
                    let source = row + oh &* OW + base
                    let dxr = dx + g.inputIndex(oh: oh, ki: ki, ow: base, kj: kj)
                    switch sw {
                    case 1: add(source, into: dxr, count: count)
                    case 2: addToEven(source, into: dxr, count: count)
                    default: for i in 0..<count { dxr[i &* sw] += source[i] }
                    }
                }
            }
        }
    }
}

/// Sliding-window arithmetic shared by convolution and pooling, torch's floor mode.
///
/// Legend: C channels, H×W input plane, kh×kw window, sh×sw stride, ph×pw padding on each side, OH×OW output plane.
/// Output (oh, ow) with window tap (ki, kj) reads input (oh·sh − ph + ki, ow·sw − pw + kj).
struct WindowGeometry {
    let C, H, W, kh, kw, sh, sw, ph, pw, OH, OW, P: Int
    /// For each ki, the output rows whose input row lies inside 0..<H; likewise columns per kj.
    private let rowRanges: [Range<Int>]
    private let columnRanges: [Range<Int>]

    init(inputShape: [Int], kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int)) {
        (C, H, W) = (inputShape[0], inputShape[1], inputShape[2])
        (kh, kw, sh, sw, ph, pw) = (kernel.0, kernel.1, stride.0, stride.1, padding.0, padding.1)
        OH = (H + 2 * ph - kh) / sh + 1
        OW = (W + 2 * pw - kw) / sw + 1
        P = OH * OW
        let (outputHeight, outputWidth) = (OH, OW)
        rowRanges = (0..<kernel.0).map {
            WindowGeometry.validOutputs(tap: $0, input: inputShape[1], output: outputHeight, stride: stride.0, padding: padding.0)
        }
        columnRanges = (0..<kernel.1).map {
            WindowGeometry.validOutputs(tap: $0, input: inputShape[2], output: outputWidth, stride: stride.1, padding: padding.1)
        }
    }

    /// Why a window of this size cannot slide over `inputShape` [C, H, W], or nil.
    static func problem(inputShape: [Int], kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int)) -> String? {
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 >= 1 }) else {
            return "needs an input of shape [channels, height, width], got \(inputShape)"
        }
        guard kernel.0 >= 1, kernel.1 >= 1 else { return "kernel must be at least 1×1, got \(kernel.0)×\(kernel.1)" }
        guard stride.0 >= 1, stride.1 >= 1 else { return "stride must be at least 1, got (\(stride.0), \(stride.1))" }
        guard padding.0 >= 0, padding.1 >= 0 else { return "padding must be ≥ 0, got (\(padding.0), \(padding.1))" }
        guard inputShape[1] + 2 * padding.0 >= kernel.0, inputShape[2] + 2 * padding.1 >= kernel.1 else {
            return "kernel \(kernel.0)×\(kernel.1) is larger than the padded input "
                + "\(inputShape[1] + 2 * padding.0)×\(inputShape[2] + 2 * padding.1)"
        }
        return nil
    }

    /// Outputs o in 0..<output with 0 ≤ o·stride − padding + tap < input.
    private static func validOutputs(tap: Int, input: Int, output: Int, stride: Int, padding: Int) -> Range<Int> {
        let low = padding - tap  // o·stride ≥ low
        let first = low <= 0 ? 0 : min(output, (low + stride - 1) / stride)
        let high = input - 1 + padding - tap  // o·stride ≤ high
        let end = high < 0 ? 0 : min(output, high / stride + 1)
        return first < end ? first..<end : first..<first
    }

    @inline(__always) func validRows(_ ki: Int) -> Range<Int> { rowRanges[ki] }
    @inline(__always) func validColumns(_ kj: Int) -> Range<Int> { columnRanges[kj] }

    /// Index in the input plane read by output (oh, ow) through tap (ki, kj); only for valid rows and columns.
    @inline(__always) func inputIndex(oh: Int, ki: Int, ow: Int, kj: Int) -> Int {
        (oh * sh - ph + ki) * W + ow * sw - pw + kj
    }
}

extension ActivationFunction {
    /// Whether `backward` gives the same dx when handed the output y in place of the pre-activation z, so a
    /// layer need not keep z: f′ depends on y alone (tanh, sigmoid, linear), or only on tests that y passes
    /// exactly when z does (relu, leaky_relu: y > 0 ⇔ z > 0; relu6: 0 < y < 6 ⇔ 0 < z < 6; elu: y > 0 ⇔ z > 0,
    /// and its f′ = y + 1 below 0).
    var isDifferentiableFromOutput: Bool {
        switch self {
        case .relu, .leaky_relu, .relu6, .elu, .tanh, .sigmoid, .linear: true
        case .gelu, .silu, .softplus: false
        }
    }
}

/// Σ p[0..<count]. Independent SIMD partial sums: a serial float sum cannot vectorize (the compiler keeps
/// the order of the additions), and is bound by the latency of one add per element.
@inline(__always)
func vectorSum(_ p: UnsafePointer<Float>, count: Int) -> Float {
    let raw = UnsafeRawPointer(p)
    var a = SIMD8<Float>(), b = SIMD8<Float>()
    var i = 0
    while i + 16 <= count {
        a += raw.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
        b += raw.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self)
        i &+= 16
    }
    var sum = (a + b).sum()
    while i < count { sum += p[i]; i &+= 1 }
    return sum
}

/// Σ x[i]·y[i] over 0..<count, with SIMD partial sums like `vectorSum`.
@inline(__always)
private func vectorDot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
    let rx = UnsafeRawPointer(x), ry = UnsafeRawPointer(y)
    var a = SIMD8<Float>(), b = SIMD8<Float>()
    var i = 0
    while i + 16 <= count {
        a += rx.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
            * ry.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
        b += rx.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self)
            * ry.loadUnaligned(fromByteOffset: (i &+ 8) &* 4, as: SIMD8<Float>.self)
        i &+= 16
    }
    var sum = (a + b).sum()
    while i < count { sum += x[i] * y[i]; i &+= 1 }
    return sum
}

/// dx = dy where y > 0, else 0 (relu′ read off the output: y > 0 ⇔ z > 0); dx may alias dy.
@inline(__always)
private func reluBackward(_ y: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count: Int) {
    let ry = UnsafeRawPointer(y), rdy = UnsafeRawPointer(dy), rdx = UnsafeMutableRawPointer(dx)
    var i = 0
    while i + 8 <= count {
        let v = ry.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
        let g = rdy.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
        rdx.storeBytes(of: g.replacing(with: 0, where: .!(v .> 0)), toByteOffset: i &* 4, as: SIMD8<Float>.self)
        i &+= 8
    }
    while i < count { dx[i] = y[i] > 0 ? dy[i] : 0; i &+= 1 }
}

/// y = max(x, 0) over `count` elements (NaN stays NaN, like torch); y may alias x.
@inline(__always)
private func reluForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
    var i = 0
    while i + 8 <= count {
        let v = rx.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
        ry.storeBytes(of: v.replacing(with: 0, where: v .< 0), toByteOffset: i &* 4, as: SIMD8<Float>.self)
        i &+= 8
    }
    while i < count { y[i] = x[i] < 0 ? 0 : x[i]; i &+= 1 }
}

/// y[i] += x[i] over `count` elements.
@inline(__always)
private func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
    let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
    var i = 0
    while i + 8 <= count {
        let sum = ry.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
            + rx.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
        ry.storeBytes(of: sum, toByteOffset: i &* 4, as: SIMD8<Float>.self)
        i &+= 8
    }
    while i < count { y[i] += x[i]; i &+= 1 }
}

/// y[i] = x[i] + b over `count` elements.
@inline(__always)
private func addScalar(_ b: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
    let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
    let bv = SIMD8<Float>(repeating: b)
    var i = 0
    while i + 8 <= count {
        ry.storeBytes(of: rx.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self) + bv, toByteOffset: i &* 4, as: SIMD8<Float>.self)
        i &+= 8
    }
    while i < count { y[i] = x[i] + b; i &+= 1 }
}

/// z[p] = initial + Σ_t weights[t] · rows[t][p] for t in 0..<rowCount, p in 0..<count: one pass over z.
@inline(__always)
private func weightedSumOfRows(_ rows: UnsafePointer<Float>, rowCount: Int, rowStride: Int, weights: UnsafePointer<Float>,
                       initial: Float, into z: UnsafeMutablePointer<Float>, count length: Int) {
    let raw = UnsafeRawPointer(rows), rz = UnsafeMutableRawPointer(z)
    var p = 0
    while p + 8 <= length {
        var sum = SIMD8<Float>(repeating: initial)
        for t in 0..<rowCount {
            sum += weights[t] * raw.loadUnaligned(fromByteOffset: (t &* rowStride &+ p) &* 4, as: SIMD8<Float>.self)
        }
        rz.storeBytes(of: sum, toByteOffset: p &* 4, as: SIMD8<Float>.self)
        p &+= 8
    }
    while p < length {
        var sum = initial
        for t in 0..<rowCount { sum += weights[t] * rows[t &* rowStride &+ p] }
        z[p] = sum
        p &+= 1
    }
}

/// y[i] = x[2i] for i in 0..<count (stride-2 im2col). Reads no further than x[2·(count − 1)].
@inline(__always)
private func gatherEven(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
    let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
    var i = 0
    while i &+ 4 < count {  // the 8 floats loaded end at x[2i + 7] ≤ x[2·(count − 1) − 1]
        ry.storeBytes(of: rx.loadUnaligned(fromByteOffset: i &* 8, as: SIMD8<Float>.self).evenHalf, toByteOffset: i &* 4,
                      as: SIMD4<Float>.self)
        i &+= 4
    }
    while i < count { y[i] = x[i &* 2]; i &+= 1 }
}

/// y[2i] += x[i] for i in 0..<count (stride-2 col2im). Touches no further than y[2·(count − 1)].
@inline(__always)
private func addToEven(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
    let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
    var i = 0
    while i &+ 4 < count {
        var pair = ry.loadUnaligned(fromByteOffset: i &* 8, as: SIMD8<Float>.self)
        pair.evenHalf += rx.loadUnaligned(fromByteOffset: i &* 4, as: SIMD4<Float>.self)
        ry.storeBytes(of: pair, toByteOffset: i &* 8, as: SIMD8<Float>.self)
        i &+= 4
    }
    while i < count { y[i &* 2] += x[i]; i &+= 1 }
}
