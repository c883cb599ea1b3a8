import Foundation
import PostgresNIO
import TokendCore

/// A row's cells read in order, each with a concrete type: `PostgresRow.decode` of a long tuple
/// resolves variadic generics at run time on every row, which costs more than the decoding.
struct RowCells {
    private var iterator: PostgresRow.Iterator

    init(_ row: PostgresRow) { iterator = row.makeIterator() }

    mutating func next<T: PostgresDecodable>(_ type: T.Type) throws -> T {
        guard let cell = iterator.next() else { throw PostgresDecodingError.Code.missingData }
        return try cell.decode(T.self, context: .default)
    }
}
