import Foundation
import GRDB

extension AppDatabase: StudyRepository {
    public func createStudy(_ study: StudyRecord, jobs: [NewJob], parameters: [String], limits: TenantLimits) throws
        -> (study: StudyRecord, jobs: [JobRecord])
    {
        precondition(jobs.count == parameters.count, "one parameters object per job")
        // One write transaction: a failing insert (a CHECK, a duplicate id) rolls back the study
        // and every job inserted before it, so no half-created study is ever visible.
        return try writer.write { db in
            // The study's jobs count against its tenant's limit like jobs submitted one by one.
            try Self.checkTenantLimits(db, tenant: study.tenant, adding: jobs, limits: limits)
            let stored = try study.insertAndFetch(db)
            let now = Date()
            let records = try zip(jobs, parameters).map { new, values in
                try JobRecord(
                    id: makeIdentifier(prefix: "job_"), tenant: stored.tenant, name: new.name, priority: new.priority,
                    datasetId: new.datasetId, spec: new.spec, maxAttempts: new.maxAttempts,
                    epochs: new.epochs, createdAt: now, studyId: stored.id, studyParameters: values
                ).insertAndFetch(db)
            }
            return (stored, records)
        }
    }

    public func study(id: String, tenant: String) throws -> StudyRecord? {
        try writer.read { db in try StudyRecord.filter(key: id).filter(Column("tenant") == tenant).fetchOne(db) }
    }

    public func listStudies(tenant: String) throws -> [StudyRecord] {
        try writer.read { db in
            try StudyRecord.filter(Column("tenant") == tenant).order(Column("created_at").desc, Column("id").desc).fetchAll(db)
        }
    }

    /// Served by the `jobs_study` index, which ends with the rowid: no sorting step.
    static let studyJobsSQL = "SELECT * FROM jobs WHERE study_id = ? ORDER BY rowid"

    public func jobs(studyId: String) throws -> [JobRecord] {
        try writer.read { db in try JobRecord.fetchAll(db, sql: Self.studyJobsSQL, arguments: [studyId]) }
    }
}
