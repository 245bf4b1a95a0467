import MPIShim
import Training

/// `ProcessCollective` on MPI_COMM_WORLD: the ranks `mpirun` started for one job.
///
/// MPI's default error handler stays in force: a failed collective (a peer died, the network broke)
/// aborts the whole job instead of returning, so no rank waits forever on a dead one.
public final class MPICollective: ProcessCollective {
    public let rank: Int
    public let size: Int

    /// Calls MPI_Init; nil when it fails (not started by mpirun, or MPI is broken).
    public init?() {
        guard descent_mpi_init() == 0 else { return nil }
        rank = Int(descent_mpi_rank())
        size = Int(descent_mpi_size())
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        check(descent_mpi_allreduce_sum_float(base, buffer.count), "MPI_Allreduce")
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        check(descent_mpi_allreduce_sum_double(base, buffer.count), "MPI_Allreduce")
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, from root: Int) {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        check(descent_mpi_bcast_float(base, buffer.count, Int32(root)), "MPI_Bcast")
    }

    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Double>, from root: Int) {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        check(descent_mpi_bcast_double(base, buffer.count, Int32(root)), "MPI_Bcast")
    }

    public func barrier() { check(descent_mpi_barrier(), "MPI_Barrier") }

    /// Ends the job on every rank: mpirun exits with `code`.
    public func abort(code: Int32) -> Never {
        descent_mpi_abort(code)
        fatalError("MPI_Abort returned")
    }

    public func finalize() { _ = descent_mpi_finalize() }

    /// A collective that failed leaves the ranks out of step: nothing can go on but ending them all.
    private func check(_ result: Int32, _ call: String) {
        if result != 0 { abort(code: 70) }
    }
}
