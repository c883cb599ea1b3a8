/// A row the store cannot read back: a value no version of tokend writes. Its description names
/// the column, never the value.
public struct StoreCorruption: Error, Sendable, Equatable, CustomStringConvertible {
    public let table: String
    public let column: String

    public init(table: String, column: String) {
        self.table = table
        self.column = column
    }

    public var description: String { "unreadable value in \(table).\(column)" }
}
