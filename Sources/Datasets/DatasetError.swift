/// A dataset that cannot be read, with a message a user can act on.
///
/// `row` is the 1-based data row (the first row after the header is row 1) and `column` the
/// header name of the offending column, when the problem has one; the message names both.
public struct DatasetError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public let row: Int?
    public let column: String?

    public init(_ message: String, row: Int? = nil, column: String? = nil) {
        self.message = message
        self.row = row
        self.column = column
    }

    public var description: String { message }
}
