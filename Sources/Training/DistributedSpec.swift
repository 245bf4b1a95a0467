import NeuralNetwork

/// The spec's `distributed`: synchronous data-parallel training on `replicas` copies of the model
/// in this process (see `ReplicaGroup`). Multi-process (MPI) training — `processes`, `hosts` — is
/// not available yet and is refused at its path.
public struct DistributedSpec: Sendable, Equatable {
    /// The most replicas a job may ask for: more than a machine's cores only adds copying.
    public static let maxReplicas = 64
    /// Replicas in this process; 1 trains exactly as without `distributed`.
    public var replicas: Int

    public init(replicas: Int) { self.replicas = replicas }

    public var jsonValue: JSONValue { ["replicas": JSONValue(replicas), "mode": "sync"] }

    /// Reads `distributed` (absent or null: nil), reporting every problem at `distributed.<field>`.
    /// `batchSize` is the global batch the replicas share (nil for full-batch methods, which share
    /// the whole training set).
    static func read(_ root: ObjectReader, batchSize: Int?) -> DistributedSpec? {
        guard let object = root.object("distributed", allowedKeys: ["replicas", "mode", "processes", "hosts"]) else { return nil }
        var asksForProcesses = false
        for key in ["processes", "hosts"] where object.has(key) {
            object.report(key, "multi-process (MPI) training is not available yet (not supported yet): use {\"replicas\": N} for data-parallel replicas in one process")
            asksForProcesses = true
        }
        let mode = object.string("mode", default: "sync")
        if mode != "sync" { object.report("mode", "must be \"sync\" (synchronous gradient averaging), got \"\(mode)\"") }
        guard object.has("replicas") else {
            if !asksForProcesses { object.report("replicas", "is required: the number of in-process replicas, 1…\(maxReplicas)") }
            return nil
        }
        let replicas = object.int("replicas", default: 1, range: 1...maxReplicas)
        if let batchSize, replicas > batchSize {
            object.report("replicas", "must be ≤ training.batch_size (\(batchSize)): each replica takes a share of every batch, got \(replicas)")
        }
        return DistributedSpec(replicas: replicas)
    }
}
