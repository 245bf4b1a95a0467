import Tensors

/// `gru`: torch's one-layer `GRU(batch_first=True)` from a zero state, returning every hidden
/// state or only the last one.
///
/// Shapes (legend): N batch, T steps, I inputs, H hidden units, G = 3H gate rows in torch's order r, z, n.
///   x (N, T, I) · W_ih (G, I) · W_hh (G, H) · b_ih, b_hh (G) → h (N, T, H), or h_{T−1} (N, H)
///   u_t = x_t·W_ihᵀ + b_ih,  v_t = h_{t−1}·W_hhᵀ + b_hh   (N, G), with h_{−1} = 0
///   r = σ(u_r + v_r),  z = σ(u_z + v_z),  n = tanh(u_n + r ⊙ v_n)
///   h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
/// Forward: one sgemm x·W_ihᵀ over all N·T rows, then one sgemm h_{t−1}·W_hhᵀ per step.
/// Backward (full BPTT): du_t and dv_t differ only in their n part (dv_n = du_n ⊙ r); one sgemm per step
/// for dh_{t−1} = z ⊙ dh_t + dv_t·W_hh, then one over all steps each for dW_ih += duᵀ·x,
/// dW_hh += dvᵀ·h_{t−1} and dx = du·W_ih; db_ih += Σ du, db_hh += Σ dv.
/// The layer's buffers are time-major (T, N, ·): one step's rows are contiguous and all steps stack
/// into one matrix. x, dx and the output are batch-first, like torch's.
public final class GRU: Layer {
    /// `weight_ih_l0` (3H, I).
    public let inputWeight: Parameter
    /// `weight_hh_l0` (3H, H).
    public let recurrentWeight: Parameter
    /// `bias_ih_l0` (3H).
    public let inputBias: Parameter
    /// `bias_hh_l0` (3H).
    public let recurrentBias: Parameter
    public let steps: Int
    public let inputSize: Int
    public let hiddenSize: Int
    /// Whether the output is every hidden state (N, T, H) rather than the last one (N, H).
    public let returnSequences: Bool
    public let outputShape: [Int]
    public var parameters: [Parameter] { [inputWeight, recurrentWeight, inputBias, recurrentBias] }

    private var input: Tensor?
    private var batchSize = 0
    // Kept from forward for backward; time-major, shapeless (only their capacity matters).
    private var inputs: Tensor?          // x (T, N, I)
    private var gates: Tensor?           // u_t, replaced by r, z, n (T, N, G)
    private var recurrentTerms: Tensor?  // v_n = h_{t−1}·W_hnᵀ + b_hn (T, N, H)
    private var hiddens: Tensor?         // h_{t−1} at slot t (T+1, N, H); slot 0 is the zero state
    private var stepTerms: Tensor?       // v_t of the current step (N, G)
    private var output: Tensor?
    // Backward.
    private var inputGateGradients: Tensor?      // du (T, N, G)
    private var recurrentGateGradients: Tensor?  // dv (T, N, G)
    private var hiddenGradient: Tensor?          // dh_t flowing back through time (N, H)
    private var biasGradient: Tensor?            // column sums (G)
    private var inputGradients: Tensor?          // dx (T, N, I)
    private var inputGradient: Tensor?           // dx, batch-first like x

    /// Initialized like torch's GRU: all four tensors uniform in ±1/√H, in the order
    /// `weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`.
    public init(inputShape: [Int], hiddenSize: Int, returnSequences: Bool, generator: inout SeededGenerator) {
        precondition(inputShape.count == 2 && inputShape.allSatisfy { $0 > 0 },
                     "gru expects a per-sample input shape [steps, features], got \(inputShape)")
        precondition(hiddenSize > 0, "gru needs a positive hidden size")
        steps = inputShape[0]
        inputSize = inputShape[1]
        self.hiddenSize = hiddenSize
        self.returnSequences = returnSequences
        outputShape = returnSequences ? [steps, hiddenSize] : [hiddenSize]
        let gateCount = 3 * hiddenSize
        (inputWeight, recurrentWeight, inputBias, recurrentBias) = RecurrentKernels.makeParameters(
            gateCount: gateCount, inputSize: inputSize, hiddenSize: hiddenSize, generator: &generator)
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        precondition(x.rowSize == steps * inputSize,
                     "gru expects \(steps)×\(inputSize) inputs per sample, got \(x.shape)")
        let n = x.rows, t = steps, i = inputSize, h = hiddenSize, g = 3 * hiddenSize
        input = x
        batchSize = n
        let xs = RecurrentKernels.scratch(&inputs, count: t * n * i)
        let u = RecurrentKernels.scratch(&gates, count: t * n * g)
        let vns = RecurrentKernels.scratch(&recurrentTerms, count: t * n * h)
        let hs = RecurrentKernels.scratch(&hiddens, count: (t + 1) * n * h)
        let v = RecurrentKernels.scratch(&stepTerms, count: n * g)
        hs.update(repeating: 0, count: n * h)

        // u (T·N, G) = x·W_ihᵀ for every step at once; the biases are added with the nonlinearities.
        RecurrentKernels.batchToTimeMajor(x.pointer, xs, batch: n, steps: t, width: i)
        BLAS.gemm(.none, .transposed, m: t * n, n: g, k: i,
                  a: xs, lda: i, b: inputWeight.value.pointer, ldb: i, beta: 0, c: u, ldc: g)
        for step in 0..<t {
            if step > 0 {  // v_t (N, G) = h_{t−1}·W_hhᵀ
                BLAS.gemm(.none, .transposed, m: n, n: g, k: h,
                          a: hs + step * n * h, lda: h, b: recurrentWeight.value.pointer, ldb: h, beta: 0, c: v, ldc: g)
            } else {  // h_{−1} = 0
                v.update(repeating: 0, count: n * g)
            }
            Self.stepForward(
                u: u + step * n * g, v: v, inputBias: inputBias.value.pointer, recurrentBias: recurrentBias.value.pointer,
                previousHidden: hs + step * n * h, recurrentTerm: vns + step * n * h, hidden: hs + (step + 1) * n * h,
                rows: n, hiddenSize: h)
        }

        let y = ensureTensor(&output, batchSize: n, sampleShape: outputShape)
        if returnSequences {
            RecurrentKernels.timeToBatchMajor(hs + n * h, y.pointer, batch: n, steps: t, width: h)
        } else {
            y.pointer.update(from: hs + t * n * h, count: n * h)
        }
        return y
    }

    /// One step for all N rows: r, z, n in place of u_t (N, G), v_n + b_hn kept, h_t (N, H).
    @inline(__always)
    private static func stepForward(
        u: UnsafeMutablePointer<Float>, v: UnsafePointer<Float>, inputBias bi: UnsafePointer<Float>,
        recurrentBias bh: UnsafePointer<Float>, previousHidden: UnsafePointer<Float>,
        recurrentTerm: UnsafeMutablePointer<Float>, hidden: UnsafeMutablePointer<Float>, rows n: Int, hiddenSize h: Int
    ) {
        for row in 0..<n {
            let ur = u + row * 3 * h, vr = v + row * 3 * h
            for k in 0..<(2 * h) { ur[k] = RecurrentKernels.sigmoid(ur[k] + bi[k] + vr[k] + bh[k]) }  // r, z
            let gr = UnsafePointer(ur), gz = gr + h, un = ur + 2 * h, vn = vr + 2 * h
            let bin = bi + 2 * h, bhn = bh + 2 * h
            let hp = previousHidden + row * h, vnr = recurrentTerm + row * h, hr = hidden + row * h
            for j in 0..<h {
                let recurrent = vn[j] + bhn[j]
                let candidate = RecurrentKernels.tanh(un[j] + bin[j] + gr[j] * recurrent)
                let z = gz[j]
                vnr[j] = recurrent
                un[j] = candidate
                hr[j] = (1 - z) * candidate + z * hp[j]
            }
        }
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard let x = input, let xs = inputs?.pointer, let gatesPointer = gates?.pointer,
              let vns = recurrentTerms?.pointer, let hs = hiddens?.pointer
        else { preconditionFailure("gru backward before forward") }
        let n = batchSize, t = steps, i = inputSize, h = hiddenSize, g = 3 * hiddenSize
        precondition(dy.count == n * outputShape.reduce(1, *), "gru output gradient \(dy.shape) for batch \(n)")
        let du = RecurrentKernels.scratch(&inputGateGradients, count: t * n * g)
        let dv = RecurrentKernels.scratch(&recurrentGateGradients, count: t * n * g)
        let dh = RecurrentKernels.scratch(&hiddenGradient, count: n * h)
        dh.update(repeating: 0, count: n * h)
        let dyp = dy.pointer

        for step in stride(from: t - 1, through: 0, by: -1) {
            // dh_t = dy_t + (z ⊙ dh_{t+1} + dv_{t+1}·W_hh, already in dh).
            if returnSequences {
                for row in 0..<n {
                    let dhr = dh + row * h, dyr = dyp + (row * t + step) * h
                    for j in 0..<h { dhr[j] += dyr[j] }
                }
            } else if step == t - 1 {
                for k in 0..<(n * h) { dh[k] += dyp[k] }
            }
            let dvStep = dv + step * n * g
            Self.stepBackward(
                gates: gatesPointer + step * n * g, recurrentTerm: vns + step * n * h, previousHidden: hs + step * n * h,
                hiddenGradient: dh, inputGateGradient: du + step * n * g, recurrentGateGradient: dvStep,
                rows: n, hiddenSize: h)
            if step > 0 {  // dh_{t−1} (N, H) = z ⊙ dh_t (already in dh) + dv_t (N, G) · W_hh (G, H)
                BLAS.gemm(.none, .none, m: n, n: h, k: g,
                          a: dvStep, lda: g, b: recurrentWeight.value.pointer, ldb: h, beta: 1, c: dh, ldc: h)
            }
        }

        // dW_ih (G, I) += duᵀ (G, T·N) · x (T·N, I)
        BLAS.gemm(.transposed, .none, m: g, n: i, k: t * n,
                  a: du, lda: g, b: xs, ldb: i, beta: 1, c: inputWeight.gradient.pointer, ldc: i)
        // dW_hh (G, H) += Σ_{t≥1} dv_tᵀ · h_{t−1}: steps 1… of dv against slots 1… of the hidden states.
        if t > 1 {
            BLAS.gemm(.transposed, .none, m: g, n: h, k: (t - 1) * n,
                      a: dv + n * g, lda: g, b: hs + n * h, ldb: h, beta: 1, c: recurrentWeight.gradient.pointer, ldc: h)
        }
        let db = RecurrentKernels.scratch(&biasGradient, count: g)
        RecurrentKernels.columnSums(of: du, rows: t * n, columns: g, into: db)
        let dbih = inputBias.gradient.pointer
        for k in 0..<g { dbih[k] += db[k] }
        RecurrentKernels.columnSums(of: dv, rows: t * n, columns: g, into: db)
        let dbhh = recurrentBias.gradient.pointer
        for k in 0..<g { dbhh[k] += db[k] }

        guard needsInputGradient else { return nil }
        // dx (T·N, I) = du (T·N, G) · W_ih (G, I), then back to batch-first.
        let dxs = RecurrentKernels.scratch(&inputGradients, count: t * n * i)
        BLAS.gemm(.none, .none, m: t * n, n: i, k: g,
                  a: du, lda: g, b: inputWeight.value.pointer, ldb: i, beta: 0, c: dxs, ldc: i)
        let dx = ensureTensor(&inputGradient, shape: x.shape)
        RecurrentKernels.timeToBatchMajor(dxs, dx.pointer, batch: n, steps: t, width: i)
        return dx
    }

    /// One step back for all N rows: from dh_t (in `hiddenGradient`, replaced by its direct part
    /// z ⊙ dh_t of dh_{t−1}), the pre-activation gradients du_t and dv_t (N, G).
    @inline(__always)
    private static func stepBackward(
        gates: UnsafePointer<Float>, recurrentTerm: UnsafePointer<Float>, previousHidden: UnsafePointer<Float>,
        hiddenGradient: UnsafeMutablePointer<Float>, inputGateGradient: UnsafeMutablePointer<Float>,
        recurrentGateGradient: UnsafeMutablePointer<Float>, rows n: Int, hiddenSize h: Int
    ) {
        for row in 0..<n {
            let gr = gates + row * 3 * h, gz = gr + h, gn = gr + 2 * h
            let dur = inputGateGradient + row * 3 * h, duz = dur + h, dun = dur + 2 * h
            let dvr = recurrentGateGradient + row * 3 * h, dvz = dvr + h, dvn = dvr + 2 * h
            let vn = recurrentTerm + row * h, hp = previousHidden + row * h, dhr = hiddenGradient + row * h
            for j in 0..<h {
                let r = gr[j], z = gz[j], candidate = gn[j], dhj = dhr[j]
                let dn = dhj * (1 - z) * (1 - candidate * candidate)
                let dr = dn * vn[j] * r * (1 - r)
                let dz = dhj * (hp[j] - candidate) * z * (1 - z)
                dur[j] = dr
                duz[j] = dz
                dun[j] = dn
                dvr[j] = dr
                dvz[j] = dz
                dvn[j] = dn * r
                dhr[j] = dhj * z
            }
        }
    }
}
