import Foundation

/// Which store to open: PostgreSQL, or the embedded single-node store in a data directory.
public enum StoreConfiguration: Sendable {
    case postgres(url: String, dataDir: String)
    case embedded(dataDir: String)

    public init(_ value: (String) -> String?) {
        let dataDir = value("TOKEND_DATA_DIR") ?? "./.tokend"
        if let url = value("TOKEND_DATABASE_URL") {
            self = .postgres(url: url, dataDir: dataDir)
        } else {
            self = .embedded(dataDir: dataDir)
        }
    }

    /// The embedded store's files and generated dev secrets (`TOKEND_DATA_DIR`).
    public var dataDir: String {
        switch self {
        case .postgres(_, let dataDir), .embedded(let dataDir): return dataDir
        }
    }
}
