import Foundation
import Testing
import TokendCore

@testable import TokendPostgres
@testable import TokendSQLite

/// The migrators run `Migration.statements` one by one. PostgreSQL rejects two statements in one
/// extended-protocol query, and SQLite silently runs only the first: every embedded migration must
/// split into exactly one statement per top-level SQL command.
@Suite struct MigrationSplittingTests {
    static let commands = ["CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE", "COMMENT"]

    static func check(_ migrations: [Migration]) {
        #expect(!migrations.isEmpty)
        #expect(migrations.map(\.version) == migrations.map(\.version).sorted())
        #expect(Set(migrations.map(\.version)).count == migrations.count)
        for migration in migrations {
            let statements = migration.statements
            // Top-level commands start at column 0; continuation lines are indented.
            let commandLines = migration.sql.split(separator: "\n").filter { line in
                commands.contains { line.hasPrefix($0 + " ") }
            }
            #expect(statements.count == commandLines.count, "\(migration.name)")
            #expect(statements.count > 0, "\(migration.name)")
            for statement in statements {
                #expect(statement.trimmingCharacters(in: .whitespaces).hasSuffix(";"), "\(migration.name): \(statement.prefix(60))")
                #expect(!statement.contains("\r"))
                #expect(!statement.contains("--"), "a comment left inside \(statement.prefix(60))")
                let first = statement.split(separator: " ").first.map(String.init) ?? ""
                #expect(commands.contains(first), "\(migration.name): \(statement.prefix(60))")
            }
        }
    }

    @Test func postgresMigrationsSplitIntoOneStatementPerCommand() {
        Self.check(PostgresMigrations.all)
        #expect(PostgresMigrations.all.first?.statements.count == 10)
    }

    @Test func sqliteMigrationsSplitIntoOneStatementPerCommand() {
        Self.check(SQLiteMigrations.all)
        #expect(SQLiteMigrations.all.first?.statements.count == 10)
    }
}
