import Foundation
import SQLiteNIO
import Synchronization
import TokendCore

#if canImport(Glibc)
import Glibc
#endif

/// A row's cells by name, each of the type tokend writes, or a `StoreCorruption` naming the column.
struct Cells {
    let row: SQLiteRow
    let table: String

    init(_ row: SQLiteRow, table: String) {
        self.row = row
        self.table = table
    }

    private func cell(_ column: String) throws -> SQLiteData {
        guard let data = row.column(column) else { throw corrupt(column) }
        return data
    }

    private func corrupt(_ column: String) -> StoreCorruption { StoreCorruption(table: table, column: column) }

    func text(_ column: String) throws -> String {
        guard case .text(let text) = try cell(column) else { throw corrupt(column) }
        return text
    }

    func optionalText(_ column: String) throws -> String? {
        switch try cell(column) {
        case .null: return nil
        case .text(let text): return text
        default: throw corrupt(column)
        }
    }

    func integer(_ column: String) throws -> Int {
        guard case .integer(let value) = try cell(column) else { throw corrupt(column) }
        return Int(value)
    }

    func bytes(_ column: String) throws -> [UInt8] {
        guard case .blob(let buffer) = try cell(column) else { throw corrupt(column) }
        return Array(buffer.readableBytesView)
    }

    /// Unix seconds (REAL).
    func date(_ column: String) throws -> Date {
        guard let date = try optionalDate(column) else { throw corrupt(column) }
        return date
    }

    func optionalDate(_ column: String) throws -> Date? {
        switch try cell(column) {
        case .null: return nil
        case .float(let seconds): return Date(timeIntervalSince1970: seconds)
        case .integer(let seconds): return Date(timeIntervalSince1970: Double(seconds))
        default: throw corrupt(column)
        }
    }

    /// A JSON value in a TEXT column: lists are arrays, `extra` an object of strings.
    func json<T: Decodable>(_ type: T.Type, _ column: String) throws -> T {
        let text = try text(column)
        guard let value = try? JSONDecoder().decode(T.self, from: Data(text.utf8)) else { throw corrupt(column) }
        return value
    }
}

/// Collects rows handed over by sqlite-nio's row callback.
final class RowCollector: Sendable {
    private let storage = Mutex<[SQLiteRow]>([])
    func append(_ row: SQLiteRow) { storage.withLock { $0.append(row) } }
    var rows: [SQLiteRow] { storage.withLock { $0 } }
}
