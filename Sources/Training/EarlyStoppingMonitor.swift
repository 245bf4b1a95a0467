import NeuralNetwork
import Tensors

/// Keras' `EarlyStopping`, epoch by epoch: stops once the monitored value has not improved by
/// `min_delta` for `patience` epochs (counting from `start_from_epoch`), and with
/// `restore_best_weights` puts back the weights of the best epoch when it stops.
struct EarlyStoppingMonitor {
    let rule: EarlyStopping
    let network: Network
    private(set) var bestEpoch: Int?
    private(set) var stoppedEarly = false
    private var best: Double
    private var wait = 0
    /// The best epoch's parameters and buffers, copied into tensors allocated once.
    private var snapshot: [Tensor]?

    init(_ rule: EarlyStopping, network: Network) {
        self.rule = rule
        self.network = network
        best = rule.baseline ?? (rule.prefersHigher ? -.infinity : .infinity)
    }

    private func value(_ metrics: EpochMetrics) -> Double? {
        switch rule.monitor {
        case .val_loss: metrics.validationLoss
        case .val_accuracy: metrics.validationAccuracy
        case .train_loss: metrics.trainLoss
        case .train_accuracy: metrics.trainAccuracy
        case .val_macro_f1: metrics.validationMacroF1
        }
    }

    /// Keras' `_is_improvement`: better than the reference by more than `min_delta`.
    private func improves(_ value: Double, on reference: Double) -> Bool {
        rule.prefersHigher ? value - rule.minDelta > reference : value + rule.minDelta < reference
    }

    private var stateTensors: [Tensor] { network.parameters.map(\.value) + network.namedBuffers.map(\.tensor) }

    private mutating func keepWeights() {
        guard rule.restoreBestWeights else { return }
        let current = stateTensors
        if snapshot == nil { snapshot = current.map { $0.clone() } }
        else { for (copy, tensor) in zip(snapshot!, current) { copy.copy(from: tensor) } }
    }

    /// After an epoch: true when training should stop now.
    mutating func shouldStop(after metrics: EpochMetrics) -> Bool {
        // Keras ignores the epochs before start_from_epoch (its epochs count from 0).
        guard metrics.epoch > rule.startFromEpoch, let current = value(metrics), current.isFinite else { return false }
        if snapshot == nil { keepWeights() }  // Keras keeps the first epoch's weights as the initial best
        wait += 1
        if improves(current, on: best) || (bestEpoch == nil && rule.baseline == nil) {
            best = current
            bestEpoch = metrics.epoch
            keepWeights()
            if rule.baseline == nil || improves(current, on: rule.baseline!) {
                wait = 0
                return false
            }
        }
        if wait >= rule.patience, metrics.epoch > 1 {
            stoppedEarly = true
            restore()
            return true
        }
        return false
    }

    // MARK: Checkpoints

    /// The monitor's counters (the best value as its bit pattern: it starts at ±∞, which JSON cannot hold).
    struct State: Codable, Equatable {
        var bestEpoch: Int?
        var stoppedEarly: Bool
        var bestBits: UInt64
        var wait: Int
    }

    var state: State { State(bestEpoch: bestEpoch, stoppedEarly: stoppedEarly, bestBits: best.bitPattern, wait: wait) }
    /// The best epoch's weights, when the rule keeps them.
    var snapshotTensors: [Tensor]? { snapshot }

    mutating func restore(_ state: State, snapshot tensors: [Tensor]?) {
        bestEpoch = state.bestEpoch
        stoppedEarly = state.stoppedEarly
        best = Double(bitPattern: state.bestBits)
        wait = state.wait
        snapshot = tensors
    }

    /// At the end of the run: Keras restores only when it stopped; nothing else to do.
    mutating func finish() {}

    private func restore() {
        guard rule.restoreBestWeights, let snapshot else { return }
        for (tensor, copy) in zip(stateTensors, snapshot) { tensor.copy(from: copy) }
    }
}
