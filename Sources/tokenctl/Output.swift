import Foundation

/// Printing for people (aligned tables) and for scripts (`--output json`, sorted keys).
enum Output {
    static func json(_ object: Any) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]) else {
            return
        }
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }

    static func table(_ header: [String], _ rows: [[String]]) {
        var widths = header.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        var text = line(header) + "\n"
        for row in rows { text += line(row) + "\n" }
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func fields(_ pairs: [(String, String)]) {
        let width = pairs.map(\.0.count).max() ?? 0
        let text = pairs.map { $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + $0.1 }.joined(separator: "\n") + "\n"
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func time(_ seconds: Int64) -> String {
        seconds == 0 ? "-" : Date(timeIntervalSince1970: TimeInterval(seconds)).ISO8601Format()
    }
}
