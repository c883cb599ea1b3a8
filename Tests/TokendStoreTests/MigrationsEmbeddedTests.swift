import Foundation
import Testing
import TokendCore

@testable import TokendPostgres
@testable import TokendSQLite

/// The binaries carry migrations/ as Swift literals; these fail when scripts/generate-migrations was not rerun.
@Suite struct MigrationsEmbeddedTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func files(_ dialect: String) throws -> [Migration] {
        let dir = root.appendingPathComponent("migrations/\(dialect)")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".sql") }.sorted()
        return try names.map { name in
            let base = String(name.dropLast(4))
            return Migration(
                version: Int(base.prefix(while: \.isNumber))!,
                name: base,
                sql: try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            )
        }
    }

    @Test func postgresMigrationsMatchTheFiles() throws {
        let files = try Self.files("postgres")
        #expect(!files.isEmpty)
        #expect(files.map(\.name) == PostgresMigrations.all.map(\.name))
        for (file, embedded) in zip(files, PostgresMigrations.all) {
            #expect(
                file.sql.trimmingCharacters(in: .whitespacesAndNewlines) == embedded.sql.trimmingCharacters(in: .whitespacesAndNewlines),
                "run scripts/generate-migrations"
            )
        }
    }

    @Test func sqliteMigrationsMatchTheFiles() throws {
        let files = try Self.files("sqlite")
        #expect(!files.isEmpty)
        #expect(files.map(\.name) == SQLiteMigrations.all.map(\.name))
        for (file, embedded) in zip(files, SQLiteMigrations.all) {
            #expect(
                file.sql.trimmingCharacters(in: .whitespacesAndNewlines) == embedded.sql.trimmingCharacters(in: .whitespacesAndNewlines),
                "run scripts/generate-migrations"
            )
        }
    }
}
