import NeuralNetwork

/// The spec's `distributed`: synchronous data-parallel training, either on `replicas` copies of the
/// model in the job's process (see `ReplicaGroup`) or on `processes` MPI ranks started by `mpirun`,
/// optionally on other `hosts` (see `RankGroup`). The two do not combine: a job asks for one or the other.
public struct DistributedSpec: Sendable, Equatable {
    /// The most replicas a job may ask for: more than a machine's cores only adds copying.
    public static let maxReplicas = 64
    /// The most MPI ranks a job may ask for.
    public static let maxProcesses = 256

    /// One entry of `hosts`: a machine mpirun may start ranks on, and how many.
    public struct Host: Sendable, Equatable {
        public var name: String
        public var slots: Int
        public init(name: String, slots: Int) { self.name = name; self.slots = slots }
        /// mpirun's `--host` syntax.
        public var text: String { "\(name):\(slots)" }

        /// `"host"` or `"host:slots"`; the error says what is wrong. Passed to mpirun's `--host`
        /// (comma-separated), so a name is a host name or an address and nothing else.
        public static func parse(_ text: String) -> Result<Host, HostError> {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            let name = String(parts[0])
            let isName = !name.isEmpty && !name.hasPrefix("-")
                && name.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || ".-_".unicodeScalars.contains($0) }
            guard parts.count <= 2, isName else {
                return .failure(HostError(message: "must be \"host\" or \"host:slots\" with a host name or address, got \"\(text)\""))
            }
            guard parts.count == 2 else { return .success(Host(name: name, slots: 1)) }
            guard let count = Int(parts[1]), (1...maxProcesses).contains(count) else {
                return .failure(HostError(message: "slots must be an integer between 1 and \(maxProcesses), got \"\(parts[1])\" in \"\(text)\""))
            }
            return .success(Host(name: name, slots: count))
        }
    }

    public struct HostError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    /// Replicas in this process; 1 trains exactly as without `distributed` (and always 1 with `processes`).
    public var replicas: Int
    /// MPI ranks (nil: the job trains in the server's process).
    public var processes: Int?
    /// Where mpirun starts the ranks; empty: all on the server's machine.
    public var hosts: [Host]

    public init(replicas: Int) {
        self.replicas = replicas
        processes = nil
        hosts = []
    }

    public init(processes: Int, hosts: [Host] = []) {
        replicas = 1
        self.processes = processes
        self.hosts = hosts
    }

    public var jsonValue: JSONValue {
        guard let processes else { return ["replicas": JSONValue(replicas), "mode": "sync"] }
        return ["processes": JSONValue(processes), "hosts": .array(hosts.map { JSONValue($0.text) }), "mode": "sync"]
    }

    /// Reads `distributed` (absent or null: nil), reporting every problem at `distributed.<field>`.
    /// `batchSize` is the global batch the replicas share (nil for full-batch methods, which share
    /// the whole training set).
    static func read(_ root: ObjectReader, batchSize: Int?) -> DistributedSpec? {
        guard let object = root.object("distributed", allowedKeys: ["replicas", "mode", "processes", "hosts"]) else { return nil }
        let mode = object.string("mode", default: "sync")
        if mode != "sync" { object.report("mode", "must be \"sync\" (synchronous gradient averaging), got \"\(mode)\"") }
        if object.has("processes") {
            if object.has("replicas") {
                object.report("replicas", "cannot be combined with processes: a job trains on in-process replicas or on MPI processes, not both")
            }
            return readProcesses(object, batchSize: batchSize)
        }
        guard object.has("replicas") else {
            if object.has("hosts") {
                object.report("processes", "is required with hosts: the number of MPI processes, 1…\(maxProcesses)")
            } else {
                object.report("replicas", "is required: the number of in-process replicas (1…\(maxReplicas)), or processes for MPI ranks")
            }
            return nil
        }
        let replicas = object.int("replicas", default: 1, range: 1...maxReplicas)
        if object.has("hosts") {
            object.report("hosts", "applies to processes (MPI ranks), not to in-process replicas")
        }
        if let batchSize, replicas > batchSize {
            object.report("replicas", "must be ≤ training.batch_size (\(batchSize)): each replica takes a share of every batch, got \(replicas)")
        }
        return DistributedSpec(replicas: replicas)
    }

    private static func readProcesses(_ object: ObjectReader, batchSize: Int?) -> DistributedSpec? {
        let processes = object.int("processes", default: 1, range: 1...maxProcesses)
        if let batchSize, processes > batchSize {
            object.report("processes", "must be ≤ training.batch_size (\(batchSize)): each process takes a share of every batch, got \(processes)")
        }
        var hosts: [Host] = []
        let items = object.array("hosts") ?? []
        for (index, item) in items.enumerated() {
            let path = "hosts[\(index)]"
            guard case .string(let text) = item else {
                object.report(path, "must be a string \"host\" or \"host:slots\", got \(item.encodedString())")
                continue
            }
            switch Host.parse(text) {
            case .success(let host): hosts.append(host)
            case .failure(let error): object.report(path, error.message)
            }
        }
        let slots = hosts.reduce(0) { $0 + $1.slots }
        // Counted only when every entry could be read: a bad entry is reported once, at its own path.
        if !hosts.isEmpty, hosts.count == items.count, slots < processes {
            object.report("hosts", "offer \(slots) slots for \(processes) processes: list at least as many slots as processes")
        }
        return DistributedSpec(processes: processes, hosts: hosts)
    }
}
