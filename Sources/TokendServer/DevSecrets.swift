import Foundation
import TokendCore

/// Secrets the embedded dev mode generates for itself.
enum DevSecrets {
    /// Reads `dataDir/admin-token`, creating it (mode 0600) with a random secret if absent.
    /// Returns the secret and the file's path.
    static func adminToken(dataDir: String) throws -> (String, String?) {
        let path = URL(fileURLWithPath: dataDir).appendingPathComponent("admin-token").standardizedFileURL.path
        if let existing = try? String(contentsOfFile: path, encoding: .utf8) {
            let trimmed = existing.trimmingCharacters(in: .whitespacesAndNewlines)
            if !trimmed.isEmpty { return (trimmed, path) }
        }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let secret = "tkd_admin_" + Randomness.secret()
        guard FileManager.default.createFile(atPath: path, contents: Data((secret + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw ConfigurationError("cannot write \(path)")
        }
        return (secret, path)
    }
}
