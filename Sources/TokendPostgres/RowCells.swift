import Foundation
import PostgresNIO
import TokendCore

/// A row's cells read in order, each with a concrete type: `PostgresRow.decode` of a long tuple
/// resolves variadic generics at run time on every row, which costs more than the decoding.
struct RowCells {
    private var iterator: PostgresRow.Iterator

    init(_ row: PostgresRow) { iterator = row.makeIterator() }

    mutating func next<T: PostgresDecodable>(_ type: T.Type) throws -> T {
        guard var cell = iterator.next() else { throw PostgresDecodingError.Code.missingData }
        // postgres-nio asks for every result column in binary (its Bind message), but a statement
        // prepared through its `PostgresDatabase.prepare` (`PostgresBatchReader`) describes its
        // columns as the server's Describe did, as text.
        cell.format = .binary
        return try cell.decode(T.self, context: .default)
    }
}
