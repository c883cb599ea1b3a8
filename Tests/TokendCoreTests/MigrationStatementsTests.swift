import Testing

@testable import TokendCore

@Suite struct MigrationStatementsTests {
    @Test func splitsAfterLinesEndingInSemicolonAndDropsComments() {
        let sql = """
            -- header comment
            -- another one

            CREATE TABLE a (
                id int PRIMARY KEY,
                -- a comment inside a statement
                name text NOT NULL
            );

              -- indented comment
            CREATE INDEX a_name_idx ON a (name);
            INSERT INTO a VALUES (1, 'x;y');
            """
        #expect(
            Migration(version: 1, name: "0001_x", sql: sql).statements == [
                "CREATE TABLE a (\n    id int PRIMARY KEY,\n    name text NOT NULL\n);",
                "CREATE INDEX a_name_idx ON a (name);",
                "INSERT INTO a VALUES (1, 'x;y');",
            ]
        )
    }

    @Test func aSemicolonInsideALineDoesNotSplit() {
        let sql = "SELECT 1; SELECT 2;\nSELECT ';'\n  || 'x';\n"
        #expect(
            Migration(version: 1, name: "x", sql: sql).statements == [
                "SELECT 1; SELECT 2;",
                "SELECT ';'\n  || 'x';",
            ]
        )
    }

    @Test func whitespaceAfterTheSemicolonStillEndsTheStatement() {
        let sql = "SELECT 1;  \t\nSELECT 2;\n"
        #expect(Migration(version: 1, name: "x", sql: sql).statements == ["SELECT 1;  \t", "SELECT 2;"])
    }

    @Test func aTrailingStatementWithoutSemicolonIsKept() {
        let sql = "CREATE TABLE a (id int);\nCREATE TABLE b (id int)\n\n"
        #expect(
            Migration(version: 1, name: "x", sql: sql).statements == [
                "CREATE TABLE a (id int);",
                "CREATE TABLE b (id int)",
            ]
        )
    }

    @Test func emptyAndCommentOnlyFilesHaveNoStatements() {
        #expect(Migration(version: 1, name: "x", sql: "").statements.isEmpty)
        #expect(Migration(version: 1, name: "x", sql: "\n\n   \n").statements.isEmpty)
        #expect(Migration(version: 1, name: "x", sql: "-- nothing here;\n  -- nor here;\n").statements.isEmpty)
    }
}
