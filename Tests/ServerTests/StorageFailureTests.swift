import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// What a job does when the data folder cannot take its files: fail with a clear message, after
/// its retries, while the server keeps serving and the store stays consistent.
/// A tmpfs of a few MiB mounted for one test: a disk that really fills up. Mounting needs root (CI
/// and this machine run the tests as root); where it is refused the tests that need it are skipped.
enum SmallFilesystem {
    static let canMount: Bool = {
        guard getuid() == 0, let folder = try? mount(megabytes: 1) else { return false }
        unmount(folder)
        return true
    }()

    /// A fresh folder with a tmpfs of `megabytes` on it.
    static func mount(megabytes: Int) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("descent-tmpfs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        do {
            try PythonTools.run(URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", folder.path])
        } catch {
            try? FileManager.default.removeItem(at: folder)
            throw error
        }
        return folder
    }

    static func unmount(_ folder: URL) {
        _ = try? PythonTools.run(URL(fileURLWithPath: "/bin/umount"), ["-l", folder.path])
        try? FileManager.default.removeItem(at: folder)
    }

    static func with<T>(megabytes: Int, _ body: (URL) async throws -> T) async throws -> T {
        let folder = try mount(megabytes: megabytes)
        defer { unmount(folder) }
        return try await body(folder)
    }
}

@Suite("Storage failures")
struct StorageFailureTests {
    @Test("What a crash leaves (files of deleted rows, partial uploads, interrupted writes, checkpoints of finished jobs) goes at the next start once old enough; live files stay")
    func leftoversAreRemovedAtStart() async throws {
        try await withTemporaryFolder { folder in
            let (dataset, job) = try await withServer(ServerOptions(runsWorkers: true, fileDatabase: true), folder: folder) { api in
                let dataset = try #require(try await api.uploadShared("iris.csv", name: "iris")["id"]?.string)
                let job = try await api.submit(try Specs.moons(epochs: 2))
                #expect(try await api.waitUntilFinished(job)["status"] == "succeeded")
                return (dataset, job)
            }
            let manager = FileManager.default
            @Sendable func place(_ path: String, hoursOld: Double) throws -> URL {
                let url = folder.appendingPathComponent(path)
                #expect(manager.createFile(atPath: url.path, contents: Data("x".utf8)))
                try manager.setAttributes([.modificationDate: Date().addingTimeInterval(-hoursOld * 3600)], ofItemAtPath: url.path)
                return url
            }
            // As a kill leaves them: a delete between its row and its files, an upload, a model write, a checkpoint.
            let gone = try [place("datasets/ds_aaaaaaaaaaaaaaaaaaaa.csv", hoursOld: 2), place("datasets/.ds_bbbbbbbbbbbbbbbbbbbb.upload", hoursOld: 2),
                            place("models/job_cccccccccccccccccccc.safetensors", hoursOld: 2),
                            place("models/.\(job).safetensors.5B1C.tmp", hoursOld: 2),
                            place("checkpoints/job_cccccccccccccccccccc.epoch-3.ckpt", hoursOld: 2),
                            place("checkpoints/\(job).epoch-1.ckpt", hoursOld: 2)]
            // Another node of a fleet may be writing these right now.
            let fresh = try [place("datasets/.ds_dddddddddddddddddddd.upload", hoursOld: 0), place("datasets/ds_eeeeeeeeeeeeeeeeeeee.csv", hoursOld: 0)]
            let live = try manager.contentsOfDirectory(atPath: folder.appendingPathComponent("datasets").path).filter { $0.hasPrefix(dataset) }
                + manager.contentsOfDirectory(atPath: folder.appendingPathComponent("models").path).filter { $0.hasPrefix(job) }
            #expect(live.count >= 2)

            try await withServer(ServerOptions(fileDatabase: true), folder: folder) { api in
                for url in gone { #expect(!manager.fileExists(atPath: url.path), "\(url.lastPathComponent) was left") }
                for url in fresh { #expect(manager.fileExists(atPath: url.path), "\(url.lastPathComponent) was taken") }
                #expect(try await api.get("/v1/datasets/\(dataset)").status == .ok)
                #expect(try await api.get("/v1/jobs/\(job)/model").status == .ok)
                // DELETE takes an interrupted write of the job's model along.
                let interrupted = try place("models/.\(job).safetensors.77AA.tmp", hoursOld: 0)
                #expect(try await api.delete("/v1/jobs/\(job)").status == .noContent)
                #expect(!manager.fileExists(atPath: interrupted.path))
            }
        }
    }

    @Test("On a full disk an upload answers 507 with the error envelope and leaves no file; deleting frees space and uploads work again",
          .enabled(if: SmallFilesystem.canMount, "mounting a tmpfs needs root"))
    func fullDiskAnswers507() async throws {
        // 3 MB of CSV per upload on a 12 MiB filesystem that also holds the database and the 4 MiB reserve: the third does not fit.
        var csv = "a,b,y\n"
        var random = SystemRandomNumberGenerator()
        while csv.utf8.count < 3_000_000 { csv += "\(Double.random(in: 0..<1, using: &random)),\(Double.random(in: 0..<1, using: &random)),\(Int.random(in: 0...1, using: &random))\n" }
        let data = Data(csv.utf8)
        try await SmallFilesystem.with(megabytes: 12) { folder in
            try await withServer(ServerOptions(fileDatabase: true), folder: folder) { api in
                var created: [String] = []
                var full: APIResponse?
                for index in 0..<4 {
                    let response = try await api.upload(data, query: "name=part\(index)")
                    if response.status == .created { created.append(try #require(try response.json()["id"]?.string)) } else { full = response; break }
                }
                #expect(created.count == 2, "two uploads fit")
                let refused = try #require(full)
                try expectError(refused, .init(code: 507), code: "insufficient_storage")
                let files = try api.datasetFiles()
                #expect(files.allSatisfy { !$0.hasSuffix(".upload") }, "\(files)")
                #expect(try await api.get("/healthz").status == .ok)
                #expect(try await api.get("/v1/datasets").json()["datasets"]?.array?.count == 2)

                // Not a byte left: a delete must still go through, or the operator cannot free anything.
                let filler = folder.appendingPathComponent("filler")
                _ = FileManager.default.createFile(atPath: filler.path, contents: nil)
                let handle = try FileHandle(forWritingTo: filler)
                while (try? handle.write(contentsOf: Data(count: 4096))) != nil {}
                try? handle.close()
                #expect(try await api.delete("/v1/datasets/\(created[0])").status == .noContent)
                try FileManager.default.removeItem(at: filler)
                #expect(try await api.upload(data, query: "name=again").status == .created, "the space freed is used again")
            }
            // Full to the last byte while stopped: the server still starts, and deleting through the API frees space.
            let filler = folder.appendingPathComponent("filler")
            _ = FileManager.default.createFile(atPath: filler.path, contents: nil)
            let handle = try FileHandle(forWritingTo: filler)
            while (try? handle.write(contentsOf: Data(count: 4096))) != nil {}
            try? handle.close()
            try await withServer(ServerOptions(fileDatabase: true), folder: folder) { api in
                #expect(try await api.get("/healthz").status == .ok)
                let ids = try await api.get("/v1/datasets").json()["datasets"]?.array?.compactMap { $0["id"]?.string } ?? []
                #expect(ids.count == 2)
                for id in ids { #expect(try await api.delete("/v1/datasets/\(id)").status == .noContent) }
            }
        }
    }

    @Test("an unwritable checkpoints folder fails the job after its attempts with a storage_error naming the checkpoint; the server keeps serving")
    func unwritableCheckpointsFailTheJob() async throws {
        try await withServer(ServerOptions(runsWorkers: true)) { api in
            // A file where the folder should be: every checkpoint write fails (root ignores permissions, not this).
            let checkpoints = api.folder.appendingPathComponent("checkpoints")
            try? FileManager.default.removeItem(at: checkpoints)
            #expect(FileManager.default.createFile(atPath: checkpoints.path, contents: Data("not a folder".utf8)))
            let id = try await api.submit([
                "dataset": ["builtin": "moons", "samples": 200], "max_attempts": 2,
                "model": ["layers": [["type": "dense", "units": 8, "activation": "relu"], ["type": "dense", "units": 2]]],
                "training": ["epochs": 3],
            ])
            let job = try await api.waitUntilFinished(id)
            #expect(job["status"] == "failed", "\(job.encodedString())")
            #expect(job["error"]?["code"] == "storage_error")
            let message = job["error"]?["message"]?.string ?? ""
            #expect(message.contains("checkpoint of epoch 1") && message.contains("attempt 2 of 2"), "\(message)")
            #expect(job["attempt"]?.int == 2)
            // No epoch was recorded without its checkpoint, and nothing was left behind.
            #expect(try await api.get("/v1/jobs/\(id)/metrics").json()["epochs"]?.array?.isEmpty == true)
            #expect(try await api.get("/healthz").status == .ok)
            // Once the folder is back, jobs train again.
            try FileManager.default.removeItem(at: checkpoints)
            try FileManager.default.createDirectory(at: checkpoints, withIntermediateDirectories: true)
            let next = try await api.submit([
                "dataset": ["builtin": "moons", "samples": 200],
                "model": ["layers": [["type": "dense", "units": 8, "activation": "relu"], ["type": "dense", "units": 2]]],
                "training": ["epochs": 2],
            ])
            #expect(try await api.waitUntilFinished(next)["status"] == "succeeded")
        }
    }
}
