import Foundation
import JobStore
import NeuralNetwork
import Training

/// What one job may ask of the workers, checked at submission (`JobSpecChecker`): each a 422 at the
/// spec path it concerns, naming the limit and the flag that sets it.
struct JobLimits: Sendable {
    /// `epochs × training rows` (`--max-epoch-samples`).
    var maxEpochSamples: Int
    /// Trainable parameters (`--max-model-parameters`).
    var maxModelParameters: Int
    /// MPI ranks of one job (`--max-mpi-processes`).
    var maxMPIProcesses: Int = 16
    /// The hosts a job's `distributed.hosts` may name, with their most slots (`--mpi-hosts`): placement is
    /// the operator's, since mpirun reaches them over ssh with the server's own identity. Empty: the
    /// server's own machine only.
    var mpiHosts: [DistributedSpec.Host] = []

    /// Every limit the resolved spec exceeds, as spec issues.
    func problems(of spec: JobSpec, rows: Int) -> [SpecIssue] {
        var issues: [SpecIssue] = []
        // The rows the model trains on: what the validation and test splits leave of the data.
        let heldOut = spec.validation.fraction + spec.test.fraction
        let trainingRows = max(0, Int((Double(rows) * (1 - heldOut)).rounded()))
        let epochs = spec.plannedEpochs
        let (samples, overflow) = epochs.multipliedReportingOverflow(by: trainingRows)
        if overflow || samples > maxEpochSamples {
            let count = overflow ? "more than \(Int.max)" : "\(samples)"
            issues.append(SpecIssue(path: "training.epochs", message: "\(epochs) epochs × \(trainingRows) training rows = \(count) samples, above the limit of \(maxEpochSamples) (--max-epoch-samples); train fewer epochs or on less data"))
        }
        if let distributed = spec.distributed, let processes = distributed.processes {
            if processes > maxMPIProcesses {
                issues.append(SpecIssue(path: "distributed.processes", message: "asks for \(processes) MPI processes, above the limit of \(maxMPIProcesses) (--max-mpi-processes)"))
            }
            let allowed = Dictionary(mpiHosts.map { ($0.name.lowercased(), $0.slots) }, uniquingKeysWith: max)
            for (index, host) in distributed.hosts.enumerated() {
                guard let slots = allowed[host.name.lowercased()] else {
                    let list = mpiHosts.isEmpty ? "this server's operator allows none (--mpi-hosts): its ranks run on its own machine; leave hosts empty"
                        : "this server's operator allows \(mpiHosts.map(\.text).joined(separator: ", ")) (--mpi-hosts)"
                    issues.append(SpecIssue(path: "distributed.hosts[\(index)]", message: "\(host.name) is not a host this server may start ranks on; \(list)"))
                    continue
                }
                if host.slots > slots {
                    issues.append(SpecIssue(path: "distributed.hosts[\(index)]", message: "asks for \(host.slots) slots on \(host.name), which offers \(slots) (--mpi-hosts)"))
                }
            }
        }
        if let parameters = spec.size?.parameters, parameters > maxModelParameters {
            issues.append(SpecIssue(path: "model", message: "has \(parameters) trainable parameters, above the limit of \(maxModelParameters) (--max-model-parameters)"))
        }
        return issues
    }
}

extension APIError {
    /// The API's answer to a limit the store enforces, or nil for another error.
    static func limit(_ error: any Error) -> APIError? {
        switch error as? JobStoreError {
        case .tooManyActiveJobs(let tenant, let active, let adding, let limit)?:
            let asked = adding == 1 ? "another job" : "\(adding) more jobs"
            return .tooManyRequests(code: "too_many_jobs", "tenant \(tenant) has \(active) queued or running jobs; \(asked) would exceed the limit of \(limit) (--max-queued-per-tenant). Wait for some to finish or cancel them")
        case .tooManyMPIProcesses(let tenant, let active, let adding, let limit)?:
            return .tooManyRequests(code: "too_many_mpi_processes", "tenant \(tenant)'s queued and running jobs ask for \(active) MPI processes; \(adding) more would exceed the limit of \(limit) (--max-mpi-processes-per-tenant). Wait for some to finish or cancel them")
        case .tooManyDatasets(let tenant, let limit)?:
            return .tooManyRequests(code: "too_many_datasets", "tenant \(tenant) already keeps \(limit) datasets, the limit (--max-datasets-per-tenant); delete one first")
        case .datasetBytesExceeded(let tenant, let stored, let adding, let limit)?:
            return APIError(status: .contentTooLarge, code: "dataset_storage_full",
                            message: "tenant \(tenant)'s datasets take \(stored) bytes; \(adding) more would exceed the limit of \(limit) bytes (--max-dataset-bytes-per-tenant); delete some first")
        default:
            return nil
        }
    }
}

extension NewJob {
    /// The row a checked spec queues: its name, priority, dataset, attempts and MPI ranks.
    init(_ spec: JobSpec, tenant: String, name: String?, idempotencyKey: String? = nil) {
        self.init(tenant: tenant, name: name, priority: spec.priority, datasetId: spec.dataset.storageIdentifier,
                  spec: spec.jsonValue.encodedString(), epochs: spec.plannedEpochs, maxAttempts: spec.maxAttempts,
                  idempotencyKey: idempotencyKey, mpiProcesses: spec.distributed?.processes ?? 0)
    }
}
