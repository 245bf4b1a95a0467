import Foundation
import GRDB
import PostgresNIO

/// Whether a failure means the disk is full: the one storage failure an operator, not a retry, fixes,
/// and that HTTP names (507 Insufficient Storage).
public enum OutOfSpace {
    /// ENOSPC or EDQUOT from a file write (as POSIXError, CocoaError or NSError, or underlying one),
    /// SQLite's SQLITE_FULL, or PostgreSQL's disk_full (SQLSTATE 53100).
    public static func describes(_ error: any Error) -> Bool {
        if let error = error as? DatabaseError { return error.resultCode == .SQLITE_FULL }
        if let error = error as? PSQLError { return error.serverInfo?[.sqlState] == "53100" }
        if let error = error as? POSIXError { return error.code == .ENOSPC || error.code == .EDQUOT }
        if let error = error as? CocoaError, error.code == .fileWriteOutOfSpace { return true }
        let error = error as NSError
        if error.domain == NSPOSIXErrorDomain, error.code == Int(ENOSPC) || error.code == Int(EDQUOT) { return true }
        if error.domain == NSCocoaErrorDomain, error.code == CocoaError.fileWriteOutOfSpace.rawValue { return true }
        if let underlying = error.userInfo[NSUnderlyingErrorKey] as? any Error { return describes(underlying) }
        return false
    }
}

/// What a store failure says, for logs and a job's error message: PostgresNIO's errors describe
/// themselves as "Generic description…" to keep queries out of logs, so this names the server's
/// message, or the failure's kind and its cause (never the query or its bindings).
public enum StoreFailureText {
    public static func of(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let message = error.serverInfo?[.message] {
            let state = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
            return "PostgreSQL: \(message)\(state)"
        }
        return "PostgreSQL: \(error.code)" + (error.underlying.map { ": \($0)" } ?? "")
    }
}
