import Foundation

/// A throwaway certificate authority made with the `openssl` command (P-256 keys), for tests
/// that serve or verify TLS. `scripts/with-postgres` installs openssl where it is missing.
public struct TestPKI: Sendable {
    public let directory: URL
    public let name: String
    /// The CA certificate (PEM): what a client trusts.
    public var caCertificate: URL { directory.appendingPathComponent("\(name)-ca.pem") }
    var caKey: URL { directory.appendingPathComponent("\(name)-ca.key") }

    /// Creates the CA `name` in `directory`.
    public init(directory: URL, name: String) throws {
        self.directory = directory
        self.name = name
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Self.openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", caKey.path, "-out", caCertificate.path, "-days", "2", "-subj", "/CN=tokend test CA \(name)",
        ])
    }

    /// A server certificate for `hosts` (DNS names or IP addresses) signed by this CA:
    /// `NAME.pem` (certificate) and `NAME.key` (PKCS#8 key, mode 0600).
    public func issue(_ leaf: String, hosts: [String] = ["localhost", "127.0.0.1"]) throws -> (certificate: URL, key: URL) {
        let certificate = directory.appendingPathComponent("\(leaf).pem")
        let key = directory.appendingPathComponent("\(leaf).key")
        let request = directory.appendingPathComponent("\(leaf).csr")
        let extensions = directory.appendingPathComponent("\(leaf).ext")
        let names = hosts.map { $0.first!.isNumber ? "IP:\($0)" : "DNS:\($0)" }.joined(separator: ",")
        try Data("subjectAltName=\(names)\nextendedKeyUsage=serverAuth\n".utf8).write(to: extensions)
        try Self.openssl([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key.path, "-out", request.path, "-subj", "/CN=\(hosts.first ?? leaf)",
        ])
        try Self.openssl([
            "x509", "-req", "-in", request.path, "-CA", caCertificate.path, "-CAkey", caKey.path,
            "-set_serial", "\(UInt32.random(in: 1...UInt32.max))", "-out", certificate.path,
            "-days", "2", "-extfile", extensions.path,
        ])
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key.path)
        return (certificate, key)
    }

    static func openssl(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("openssl-\(UUID().uuidString).out")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = process.standardOutput
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
            throw TestSetupError("openssl \(arguments.first ?? "") failed (is openssl installed?): \(text.suffix(1000))")
        }
    }
}
