import Tensors

/// `lstm`: torch's one-layer `LSTM(batch_first=True)` from a zero state, returning every hidden
/// state or only the last one.
///
/// Shapes (legend): N batch, T steps, I inputs, H hidden units, G = 4H gate rows in torch's order i, f, g, o.
///   x (N, T, I) · W_ih (G, I) · W_hh (G, H) · b_ih, b_hh (G) → h (N, T, H), or h_{T−1} (N, H)
///   a_t = x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh   (N, G), with h_{−1} = c_{−1} = 0
///   i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
///   c_t = f ⊙ c_{t−1} + i ⊙ g;  h_t = o ⊙ tanh(c_t)
/// Forward: one sgemm x·W_ihᵀ over all N·T rows, then one sgemm h_{t−1}·W_hhᵀ per step.
/// Backward (full BPTT): one sgemm per step for dh_{t−1} = da_t·W_hh, then one over all steps each for
/// dW_ih += daᵀ·x, dW_hh += daᵀ·h_{t−1} and dx = da·W_ih; db_ih and db_hh both += Σ da.
/// The layer's buffers are time-major (T, N, ·): one step's rows are contiguous and all steps stack
/// into one matrix. x, dx and the output are batch-first, like torch's.
public final class LSTM: Layer {
    /// `weight_ih_l0` (4H, I).
    public let inputWeight: Parameter
    /// `weight_hh_l0` (4H, H).
    public let recurrentWeight: Parameter
    /// `bias_ih_l0` (4H).
    public let inputBias: Parameter
    /// `bias_hh_l0` (4H).
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
    private var inputs: Tensor?      // x (T, N, I)
    private var gates: Tensor?       // i, f, g, o after their nonlinearities (T, N, G)
    private var cells: Tensor?       // c_{t−1} at slot t (T+1, N, H); slot 0 is the zero state
    private var cellTanhs: Tensor?   // tanh(c_t) (T, N, H)
    private var hiddens: Tensor?     // h_{t−1} at slot t (T+1, N, H); slot 0 is the zero state
    private var bias: Tensor?        // b_ih + b_hh (G)
    private var output: Tensor?
    // Backward.
    private var gateGradients: Tensor?   // da (T, N, G)
    private var hiddenGradient: Tensor?  // dh_t flowing back through time (N, H)
    private var cellGradient: Tensor?    // dc_t flowing back through time (N, H)
    private var biasGradient: Tensor?    // Σ da over the N·T rows (G)
    private var inputGradients: Tensor?  // dx (T, N, I)
    private var inputGradient: Tensor?   // dx, batch-first like x

    /// Initialized like torch's LSTM: all four tensors uniform in ±1/√H, in the order
    /// `weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`.
    public init(inputShape: [Int], hiddenSize: Int, returnSequences: Bool, generator: inout SeededGenerator) {
        precondition(inputShape.count == 2 && inputShape.allSatisfy { $0 > 0 },
                     "lstm expects a per-sample input shape [steps, features], got \(inputShape)")
        precondition(hiddenSize > 0, "lstm needs a positive hidden size")
        steps = inputShape[0]
        inputSize = inputShape[1]
        self.hiddenSize = hiddenSize
        self.returnSequences = returnSequences
        outputShape = returnSequences ? [steps, hiddenSize] : [hiddenSize]
        let gateCount = 4 * hiddenSize
        (inputWeight, recurrentWeight, inputBias, recurrentBias) = RecurrentKernels.makeParameters(
            gateCount: gateCount, inputSize: inputSize, hiddenSize: hiddenSize, generator: &generator)
    }

    public func forward(_ x: Tensor, isTraining: Bool) -> Tensor {
        precondition(x.rowSize == steps * inputSize,
                     "lstm expects \(steps)×\(inputSize) inputs per sample, got \(x.shape)")
        let n = x.rows, t = steps, i = inputSize, h = hiddenSize, g = 4 * hiddenSize
        input = x
        batchSize = n
        let xs = RecurrentKernels.scratch(&inputs, count: t * n * i)
        let a = RecurrentKernels.scratch(&gates, count: t * n * g)
        let cs = RecurrentKernels.scratch(&cells, count: (t + 1) * n * h)
        let tcs = RecurrentKernels.scratch(&cellTanhs, count: t * n * h)
        let hs = RecurrentKernels.scratch(&hiddens, count: (t + 1) * n * h)
        let b = RecurrentKernels.scratch(&bias, count: g)
        let bih = inputBias.value.pointer, bhh = recurrentBias.value.pointer
        for k in 0..<g { b[k] = bih[k] + bhh[k] }
        cs.update(repeating: 0, count: n * h)
        hs.update(repeating: 0, count: n * h)

        // a (T·N, G) = x·W_ihᵀ for every step at once; the bias is added with the nonlinearities.
        RecurrentKernels.batchToTimeMajor(x.pointer, xs, batch: n, steps: t, width: i)
        BLAS.gemm(.none, .transposed, m: t * n, n: g, k: i,
                  a: xs, lda: i, b: inputWeight.value.pointer, ldb: i, beta: 0, c: a, ldc: g)
        for step in 0..<t {
            let aStep = a + step * n * g
            if step > 0 {  // a_t += h_{t−1}·W_hhᵀ (h_{−1} = 0 adds nothing)
                BLAS.gemm(.none, .transposed, m: n, n: g, k: h,
                          a: hs + step * n * h, lda: h, b: recurrentWeight.value.pointer, ldb: h,
                          beta: 1, c: aStep, ldc: g)
            }
            Self.stepForward(a: aStep, bias: b, previousCell: cs + step * n * h, cell: cs + (step + 1) * n * h,
                             cellTanh: tcs + step * n * h, hidden: hs + (step + 1) * n * h, rows: n, hiddenSize: h)
        }

        let y = ensureTensor(&output, batchSize: n, sampleShape: outputShape)
        if returnSequences {
            RecurrentKernels.timeToBatchMajor(hs + n * h, y.pointer, batch: n, steps: t, width: h)
        } else {
            y.pointer.update(from: hs + t * n * h, count: n * h)
        }
        return y
    }

    /// One step for all N rows: the gate nonlinearities in place on a_t (N, G), then c_t, tanh(c_t), h_t (N, H).
    @inline(__always)
    private static func stepForward(
        a: UnsafeMutablePointer<Float>, bias b: UnsafePointer<Float>, previousCell: UnsafePointer<Float>,
        cell: UnsafeMutablePointer<Float>, cellTanh: UnsafeMutablePointer<Float>, hidden: UnsafeMutablePointer<Float>,
        rows n: Int, hiddenSize h: Int
    ) {
        for row in 0..<n {
            let ar = a + row * 4 * h
            for k in 0..<(2 * h) { ar[k] = RecurrentKernels.sigmoid(ar[k] + b[k]) }               // i, f
            for k in (2 * h)..<(3 * h) { ar[k] = RecurrentKernels.tanh(ar[k] + b[k]) }            // g
            for k in (3 * h)..<(4 * h) { ar[k] = RecurrentKernels.sigmoid(ar[k] + b[k]) }         // o
            let gi = UnsafePointer(ar), gf = gi + h, gg = gi + 2 * h, go = gi + 3 * h
            let cp = previousCell + row * h, c = cell + row * h, tc = cellTanh + row * h, hr = hidden + row * h
            for j in 0..<h {
                let value = gf[j] * cp[j] + gi[j] * gg[j]
                let squashed = RecurrentKernels.tanh(value)
                c[j] = value
                tc[j] = squashed
                hr[j] = go[j] * squashed
            }
        }
    }

    public func backward(_ dy: Tensor, needsInputGradient: Bool) -> Tensor? {
        guard let x = input, let xs = inputs?.pointer, let a = gates?.pointer, let cs = cells?.pointer,
              let tcs = cellTanhs?.pointer, let hs = hiddens?.pointer
        else { preconditionFailure("lstm backward before forward") }
        let n = batchSize, t = steps, i = inputSize, h = hiddenSize, g = 4 * hiddenSize
        precondition(dy.count == n * outputShape.reduce(1, *), "lstm output gradient \(dy.shape) for batch \(n)")
        let da = RecurrentKernels.scratch(&gateGradients, count: t * n * g)
        let dh = RecurrentKernels.scratch(&hiddenGradient, count: n * h)
        let dc = RecurrentKernels.scratch(&cellGradient, count: n * h)
        dh.update(repeating: 0, count: n * h)
        dc.update(repeating: 0, count: n * h)
        let dyp = dy.pointer

        for step in stride(from: t - 1, through: 0, by: -1) {
            // dh_t = dy_t + (da_{t+1}·W_hh, already in dh).
            if returnSequences {
                for row in 0..<n {
                    let dhr = dh + row * h, dyr = dyp + (row * t + step) * h
                    for j in 0..<h { dhr[j] += dyr[j] }
                }
            } else if step == t - 1 {
                for k in 0..<(n * h) { dh[k] += dyp[k] }
            }
            let daStep = da + step * n * g
            Self.stepBackward(gates: a + step * n * g, previousCell: cs + step * n * h, cellTanh: tcs + step * n * h,
                              hiddenGradient: dh, cellGradient: dc, gateGradient: daStep, rows: n, hiddenSize: h)
            if step > 0 {  // dh_{t−1} (N, H) = da_t (N, G) · W_hh (G, H)
                BLAS.gemm(.none, .none, m: n, n: h, k: g,
                          a: daStep, lda: g, b: recurrentWeight.value.pointer, ldb: h, beta: 0, c: dh, ldc: h)
            }
        }

        // dW_ih (G, I) += daᵀ (G, T·N) · x (T·N, I)
        BLAS.gemm(.transposed, .none, m: g, n: i, k: t * n,
                  a: da, lda: g, b: xs, ldb: i, beta: 1, c: inputWeight.gradient.pointer, ldc: i)
        // dW_hh (G, H) += Σ_{t≥1} da_tᵀ · h_{t−1}: steps 1… of da against slots 1… of the hidden states.
        if t > 1 {
            BLAS.gemm(.transposed, .none, m: g, n: h, k: (t - 1) * n,
                      a: da + n * g, lda: g, b: hs + n * h, ldb: h, beta: 1, c: recurrentWeight.gradient.pointer, ldc: h)
        }
        let db = RecurrentKernels.scratch(&biasGradient, count: g)
        RecurrentKernels.columnSums(of: da, rows: t * n, columns: g, into: db)
        let dbih = inputBias.gradient.pointer, dbhh = recurrentBias.gradient.pointer
        for k in 0..<g {
            dbih[k] += db[k]
            dbhh[k] += db[k]
        }

        guard needsInputGradient else { return nil }
        // dx (T·N, I) = da (T·N, G) · W_ih (G, I), then back to batch-first.
        let dxs = RecurrentKernels.scratch(&inputGradients, count: t * n * i)
        BLAS.gemm(.none, .none, m: t * n, n: i, k: g,
                  a: da, lda: g, b: inputWeight.value.pointer, ldb: i, beta: 0, c: dxs, ldc: i)
        let dx = ensureTensor(&inputGradient, shape: x.shape)
        RecurrentKernels.timeToBatchMajor(dxs, dx.pointer, batch: n, steps: t, width: i)
        return dx
    }

    /// One step back for all N rows: from dh_t (in `hiddenGradient`) and dc_t from step t+1 (in
    /// `cellGradient`, replaced by dc_{t−1}'s direct part f ⊙ dc_t), the pre-activation gradients da_t (N, G).
    @inline(__always)
    private static func stepBackward(
        gates a: UnsafePointer<Float>, previousCell: UnsafePointer<Float>, cellTanh: UnsafePointer<Float>,
        hiddenGradient: UnsafePointer<Float>, cellGradient: UnsafeMutablePointer<Float>,
        gateGradient: UnsafeMutablePointer<Float>, rows n: Int, hiddenSize h: Int
    ) {
        for row in 0..<n {
            let gi = a + row * 4 * h, gf = gi + h, gg = gi + 2 * h, go = gi + 3 * h
            let dai = gateGradient + row * 4 * h, daf = dai + h, dag = dai + 2 * h, dao = dai + 3 * h
            let cp = previousCell + row * h, tc = cellTanh + row * h
            let dhr = hiddenGradient + row * h, dcr = cellGradient + row * h
            for j in 0..<h {
                let i = gi[j], f = gf[j], gj = gg[j], o = go[j], squashed = tc[j], dhj = dhr[j]
                let dcj = dhj * o * (1 - squashed * squashed) + dcr[j]
                dai[j] = dcj * gj * i * (1 - i)
                daf[j] = dcj * cp[j] * f * (1 - f)
                dag[j] = dcj * i * (1 - gj * gj)
                dao[j] = dhj * squashed * o * (1 - o)
                dcr[j] = dcj * f
            }
        }
    }
}
