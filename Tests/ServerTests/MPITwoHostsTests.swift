import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// `hosts`: the ranks of one job on two network hosts. The second host is a network namespace of this
/// machine with its own address and host name and an sshd, which is how mpirun reaches other hosts;
/// both share a fleet's PostgreSQL and the data folder, as hosts on shared storage would.
/// `scripts/mpi-two-hosts.sh` builds all that, runs the jobs and tears it down; it needs root.
@Suite("MPI ranks on two hosts", .serialized, .enabled(if: getuid() == 0, "network namespaces and sshd need root"))
struct MPITwoHostsTests {
    @Test("a job's second rank runs on the other host, and killing it there retries the job to every epoch once")
    func ranksOnTwoHosts() async throws {
        let script = RepositoryFiles.packageRoot.appendingPathComponent("scripts/mpi-two-hosts.sh")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("descent-two-hosts-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: output) }
        // Output to a file, not a pipe: the script's daemons (sshd, postgres) must not hold a pipe open.
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result {
                    FileManager.default.createFile(atPath: output.path, contents: nil)
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: "/bin/bash")
                    process.arguments = [script.path, ServerProcess.executable.path]
                    process.currentDirectoryURL = RepositoryFiles.packageRoot
                    let handle = try FileHandle(forWritingTo: output)
                    process.standardOutput = handle
                    process.standardError = handle
                    try process.run()
                    process.waitUntilExit()
                    try handle.close()
                    return process.terminationStatus
                })
            }
        }
        let log = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        print("[figures] two hosts:\n\(log.split(separator: "\n").filter { !$0.hasPrefix("+") }.suffix(8).joined(separator: "\n"))")
        #expect(status == 0, "\(log)")
        #expect(log.contains("second host: h2"))
        #expect(log.contains("ranks inside h2 while") && log.contains("trains: 1"), "rank 1 ran on the other host")
        #expect(log.contains(": succeeded 200 1 (status, epochs, attempt)"))
        #expect(log.contains("trains: running at epoch"), "the remote rank was killed mid-job")
        #expect(log.contains(": succeeded 400 2 (status, epochs, attempt)"), "the retry after the remote rank's death")
        #expect(log.contains("every epoch once: True"))
        #expect(log.contains(#"server: {"status":"ok"}"#))
    }
}
