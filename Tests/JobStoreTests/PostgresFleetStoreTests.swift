import Dispatch
import Foundation
import PostgresTestSupport
import Testing
@testable import JobStore

/// What only a fleet's store does: several nodes on one database, migrations applied once, claims
/// that never hand a job out twice, and leases.
@Suite("PostgresStore as a fleet's queue")
struct PostgresFleetStoreTests {
    @Test("nodes opening one new database at once apply each migration exactly once")
    func concurrentMigrations() throws {
        let cluster = try #require(PostgresCluster.shared)
        let url = try cluster.makeDatabase()
        let opened = Locked<[Result<PostgresStore, Error>]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { index in
            let result = Result { try PostgresStore.open(url: url, nodeId: "node-\(index)", maxConnections: 2) }
            opened.withLock { $0.append(result) }
        }
        let stores = try opened.withLock { $0 }.map { try $0.get() }
        let files = try PostgresStore.migrationFiles().map(\.lastPathComponent)
        #expect(try stores[0].appliedMigrations() == files)
        #expect(try stores[0].query("SELECT COUNT(*) AS count FROM schema_migrations")[0].value("count", as: Int.self) == files.count)
        stores.forEach { $0.close() }
    }

    @Test("three nodes of four threads each claiming forty jobs hand each job out exactly once")
    func concurrentClaimsAcrossNodes() throws {
        let first = try makePostgresStore(nodeId: "node-0")
        let url = try #require(PostgresCluster.shared).url(database: try first.query("SELECT current_database() AS name")[0].value("name"))
        let nodes = [first] + (try (1..<3).map { try PostgresStore.open(url: url, nodeId: "node-\($0)", maxConnections: 4) })
        let ids = try (0..<40).map { try first.createJob(makeNewJob(name: "job \($0)")).job.id }
        let claims = Locked<[(node: String, job: String)]>([])
        let start = Date()
        DispatchQueue.concurrentPerform(iterations: 12) { thread in
            let node = nodes[thread % 3]
            while let job = try? node.claimNextJob() {
                claims.withLock { $0.append((node.nodeId, job.id)) }
            }
        }
        let taken = claims.withLock { $0 }
        print("[figures] 40 claims by 3 nodes × 4 threads in \(String(format: "%.3f", Date().timeIntervalSince(start))) s; per node: "
              + "\(Dictionary(grouping: taken, by: \.node).mapValues(\.count).sorted { $0.key < $1.key })")
        #expect(taken.count == 40)
        #expect(Set(taken.map(\.job)) == Set(ids))
        let nodesOfJobs = try first.jobNodes()
        #expect(taken.allSatisfy { nodesOfJobs[$0.job] == $0.node })
        #expect(try ids.allSatisfy { try first.job(id: $0)?.attempt == 1 })
        nodes.forEach { $0.close() }
    }

    @Test("a job whose lease expired goes back to the queue; its old node can no longer write to it")
    func expiredLease() throws {
        let nodeA = try makePostgresStore(nodeId: "node-a", leaseSeconds: 1)
        let url = try #require(PostgresCluster.shared).url(database: try nodeA.query("SELECT current_database() AS name")[0].value("name"))
        let nodeB = try PostgresStore.open(url: url, nodeId: "node-b", leaseSeconds: 1, maxConnections: 2)
        defer { nodeA.close(); nodeB.close() }
        let job = try nodeA.createJob(makeNewJob(epochs: 3)).job
        #expect(try nodeA.claimNextJob()?.id == job.id)
        try nodeA.recordEpoch(makeMetricsRow(jobId: job.id, epoch: 1), progress: 1.0 / 3, latest: "{}", checkpointEpoch: 1)

        // Renewed by its heartbeat, the lease outlives its second: nobody takes the job.
        for _ in 0..<3 {
            Thread.sleep(forTimeInterval: 0.5)
            try nodeA.renewLeases(jobIds: [job.id])
            #expect(try nodeB.requeueExpiredLeases() == 0)
        }
        // Another node starting up leaves a live node's job alone.
        #expect(try nodeB.requeueInterruptedJobs() == 0)

        // Node A stops beating (it died): past the lease, node B requeues the job and resumes it.
        Thread.sleep(forTimeInterval: 1.5)
        #expect(try nodeB.requeueExpiredLeases() == 1)
        let resumed = try #require(try nodeB.claimNextJob())
        #expect(resumed.id == job.id && resumed.attempt == 2 && resumed.checkpointEpoch == 1 && resumed.epoch == 1)
        #expect(try nodeB.jobNodes()[job.id] == "node-b")

        #expect(throws: JobStoreError.self) {
            try nodeA.recordEpoch(makeMetricsRow(jobId: job.id, epoch: 2), progress: 2.0 / 3, latest: "{}")
        }
        #expect(throws: JobStoreError.self) {
            try nodeA.finishJob(id: job.id, status: .succeeded, errorCode: nil, errorMessage: nil, result: nil, bestEpoch: nil, stoppedEarly: false)
        }
        try nodeB.recordEpoch(makeMetricsRow(jobId: job.id, epoch: 2), progress: 2.0 / 3, latest: "{}")
        #expect(try nodeB.metrics(jobId: job.id).map(\.epoch) == [1, 2])
    }

    @Test("a node restarting under its own id requeues the jobs it left running at once")
    func restartUnderSameId() throws {
        let node = try makePostgresStore(nodeId: "node-a", leaseSeconds: 60)
        defer { node.close() }
        let job = try node.createJob(makeNewJob()).job
        _ = try node.claimNextJob()
        #expect(try node.requeueExpiredLeases() == 0)
        #expect(try node.requeueInterruptedJobs() == 1)
        #expect(try node.job(id: job.id)?.status == .queued)
    }

    @Test("an expired lease of a job with a cancel request ends it cancelled")
    func expiredLeaseWithCancelRequest() throws {
        let node = try makePostgresStore(nodeId: "node-a", leaseSeconds: 1)
        defer { node.close() }
        let job = try node.createJob(makeNewJob()).job
        _ = try node.claimNextJob()
        _ = try node.requestCancel(id: job.id, tenant: Tenant.default)
        Thread.sleep(forTimeInterval: 1.3)
        #expect(try node.requeueExpiredLeases() == 0)
        let cancelled = try #require(try node.job(id: job.id))
        #expect(cancelled.status == .cancelled && cancelled.finishedAt != nil)
    }

    @Test("events broadcast by one node reach the listeners of every node")
    func eventBus() throws {
        let nodeA = try makePostgresStore(nodeId: "node-a")
        let url = try #require(PostgresCluster.shared).url(database: try nodeA.query("SELECT current_database() AS name")[0].value("name"))
        let nodeB = try PostgresStore.open(url: url, nodeId: "node-b", maxConnections: 2)
        defer { nodeA.close(); nodeB.close() }
        let heard = Locked<[String]>([])
        let arrived = DispatchSemaphore(value: 0)
        try nodeB.listen { payload in
            heard.withLock { $0.append(payload) }
            arrived.signal()
        }
        for index in 0..<3 { nodeA.broadcast(#"{"n":\#(index)}"#) }
        for _ in 0..<3 { _ = arrived.wait(timeout: .now() + 10) }
        #expect(heard.withLock { $0 } == [#"{"n":0}"#, #"{"n":1}"#, #"{"n":2}"#])
    }

    @Test("the heartbeat renews only the jobs the node still trains: one whose end it could not record expires and is requeued")
    func renewalNamesItsJobs() throws {
        let nodeA = try makePostgresStore(nodeId: "node-a", leaseSeconds: 1)
        let url = try #require(PostgresCluster.shared).url(database: try nodeA.query("SELECT current_database() AS name")[0].value("name"))
        let nodeB = try PostgresStore.open(url: url, nodeId: "node-b", leaseSeconds: 1, maxConnections: 2)
        defer { nodeA.close(); nodeB.close() }
        let training = try nodeA.createJob(makeNewJob(name: "training")).job
        let abandoned = try nodeA.createJob(makeNewJob(name: "abandoned")).job
        #expect(try nodeA.claimNextJob() != nil && nodeA.claimNextJob() != nil)
        for _ in 0..<4 {
            Thread.sleep(forTimeInterval: 0.5)
            try nodeA.renewLeases(jobIds: [training.id])
        }
        #expect(try nodeB.requeueExpiredLeases() == 1)
        #expect(try nodeB.job(id: abandoned.id)?.status == .queued)
        #expect(try nodeB.job(id: training.id)?.status == .running)
    }

    @Test("a URL that is not postgres://user@host/db is refused with a message")
    func invalidURL() {
        #expect(throws: PostgresStoreError.self) { try PostgresStore.open(url: "postgres://127.0.0.1/db", nodeId: "n") }
        #expect(throws: PostgresStoreError.self) { try PostgresStore.open(url: "postgres://me@127.0.0.1", nodeId: "n") }
        #expect(PostgresStore.isPostgresURL("postgresql://me@h/db") && !PostgresStore.isPostgresURL("/data/descent.sqlite"))
    }

    /// Whether the store's connection is encrypted, as the server sees it.
    static func isEncrypted(_ store: PostgresStore) throws -> Bool {
        try store.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")[0].value("ssl")
    }

    @Test("sslmode: verify-full and verify-ca with the cluster's own CA, require and prefer encrypt; disable does not; a foreign CA or a bad mode is refused")
    func sslModes() throws {
        let cluster = try #require(PostgresCluster.shared)
        let url = try cluster.makeDatabase()
        let ca = cluster.certificateAuthority.path
        for (query, encrypted) in [("?sslmode=verify-full&sslrootcert=\(ca)", true), ("?sslmode=verify-ca&sslrootcert=\(ca)", true),
                                   ("?sslmode=require", true), ("", true), ("?sslmode=disable", false)] {
            let store = try PostgresStore.open(url: url + query, nodeId: "n", maxConnections: 1)
            #expect(try Self.isEncrypted(store) == encrypted, "\(query)")
            store.close()
        }
        // The system's CAs did not sign the cluster's certificate.
        #expect(throws: PostgresStoreError.self) { try PostgresStore.open(url: url + "?sslmode=verify-full", nodeId: "n", maxConnections: 1) }
        #expect(throws: PostgresStoreError.invalidParameter("sslmode: bogus is not one of disable, prefer, require, verify-ca, verify-full")) {
            try PostgresStore.open(url: url + "?sslmode=bogus", nodeId: "n")
        }
        #expect(throws: PostgresStoreError.self) { try PostgresStore.open(url: url + "?sslmode=verify-full&sslrootcert=/nonexistent.pem", nodeId: "n") }
        #expect(throws: PostgresStoreError.self) { try PostgresStore.open(url: url + "?application_name=x", nodeId: "n") }
    }
}
