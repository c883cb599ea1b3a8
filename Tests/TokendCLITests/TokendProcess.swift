import Foundation
import Testing
import TokendTestSupport

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The built executables, next to the test bundle in .build/<config>/.
enum Binaries {
    static var directory: URL {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent(".build/debug"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent("tokend").path) } ?? candidates[1]
    }

    static var tokend: URL { directory.appendingPathComponent("tokend") }
    static var tokenctl: URL { directory.appendingPathComponent("tokenctl") }
}

struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String

    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any]
    }
}

/// Runs a program to completion with `input` on its standard input. A program still running after
/// `deadline` seconds (a server that should have refused to start, a hung command) is killed, and
/// its result says so (status 137 and a note on stderr), so a wrong outcome fails the test instead
/// of hanging it.
func run(
    _ executable: URL,
    _ arguments: [String],
    environment: [String: String] = [:],
    input: String? = nil,
    cwd: URL? = nil,
    deadline: TimeInterval = 120
) throws -> CommandResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for key in env.keys where key.hasPrefix("TOKEND_") || key.hasPrefix("TOKENCTL_") { env.removeValue(forKey: key) }
    for (key, value) in environment { env[key] = value }
    process.environment = env
    if let cwd { process.currentDirectoryURL = cwd }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokenctl-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let outURL = directory.appendingPathComponent("out")
    let errURL = directory.appendingPathComponent("err")
    let inURL = directory.appendingPathComponent("in")
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    FileManager.default.createFile(atPath: inURL.path, contents: Data((input ?? "").utf8))
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    process.standardInput = try FileHandle(forReadingFrom: inURL)
    try process.run()
    let giveUp = Date().addingTimeInterval(deadline)
    while process.isRunning && Date() < giveUp {
        Thread.sleep(forTimeInterval: 0.02)  // polling for the exit, with a deadline
    }
    let killed = process.isRunning
    if killed { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
    return CommandResult(
        status: killed ? 137 : process.terminationStatus,
        stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
        stderr: killed ? stderr + "\n[test: \(executable.lastPathComponent) still running after \(deadline) s; killed]" : stderr
    )
}

/// A `tokend serve` child process on ephemeral ports, its log in a file.
final class TokendProcess {
    let process = Process()
    let dataDir: URL
    let logURL: URL
    let environment: [String: String]
    private(set) var publicURL = ""
    private(set) var adminURL = ""
    /// `http(s)://host:port` of the gRPC listener (empty when it is off).
    private(set) var grpcURL = ""

    /// Starts tokend with `environment` (plus ephemeral listeners and a data dir) and waits until
    /// both listeners have logged their addresses.
    init(dataDir: URL? = nil, environment: [String: String] = [:]) throws {
        let dir = dataDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("tokend-cli-\(UUID().uuidString)")
        self.dataDir = dir
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        logURL = dir.appendingPathComponent("log-\(UUID().uuidString).jsonl")
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        var env = ProcessInfo.processInfo.environment
        for key in env.keys where key.hasPrefix("TOKEND_") || key.hasPrefix("TOKENCTL_") { env.removeValue(forKey: key) }
        env["TOKEND_HTTP_ADDR"] = "127.0.0.1:0"
        env["TOKEND_ADMIN_ADDR"] = "127.0.0.1:0"
        env["TOKEND_GRPC_ADDR"] = "127.0.0.1:0"
        env["TOKEND_DATA_DIR"] = dir.path
        env["TOKEND_LOG_FORMAT"] = "json"
        // Tests decide on outcomes, not on how fast a busy machine answers: a generous store limit,
        // unless the test is about the limit and sets its own.
        env["TOKEND_STORE_TIMEOUT"] = "30s"
        for (key, value) in environment { env[key] = value }
        self.environment = env
        process.executableURL = Binaries.tokend
        process.arguments = ["serve"]
        process.environment = env
        process.currentDirectoryURL = dir
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: logURL)
        try process.run()
        try waitForListeners()
    }

    private func waitForListeners() throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            for line in log.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    let message = object["msg"] as? String, let address = object["address"] as? String
                else { continue }
                if message == "public listener ready" { publicURL = address }
                if message == "admin listener ready" { adminURL = address }
                if message == "gRPC listener ready" { grpcURL = address }
            }
            let grpcReady = !grpcURL.isEmpty || environment["TOKEND_GRPC_ADDR"] == "off"
            if !publicURL.isEmpty && !adminURL.isEmpty && grpcReady { return }
            guard process.isRunning else { throw TestSetupError("tokend exited: \(log.suffix(2000))") }
            Thread.sleep(forTimeInterval: 0.05)  // polling the log file for a condition, with a deadline
        }
        throw TestSetupError("tokend did not report its listeners within 30 s: \(log.suffix(2000))")
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    var adminToken: String {
        if let token = environment["TOKEND_ADMIN_TOKEN"] { return token }
        return ((try? String(contentsOf: dataDir.appendingPathComponent("admin-token"), encoding: .utf8)) ?? "")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs tokenctl against this server's admin listener.
    func tokenctl(_ arguments: [String], input: String? = nil, withToken: Bool = true) throws -> CommandResult {
        var env = ["TOKENCTL_SERVER": adminURL]
        if withToken { env["TOKENCTL_ADMIN_TOKEN"] = adminToken }
        return try run(Binaries.tokenctl, arguments, environment: env, input: input)
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        checkLogForSecrets()
    }

    private var logChecked = false

    /// No raw token or secret in any line this process logged (issue 15: the whole suite's logs are
    /// checked for every token and secret the tests created).
    func checkLogForSecrets() {
        guard !logChecked else { return }
        logChecked = true
        let found = secretsInLog(log)
        if !found.isEmpty { Issue.record("tokend logged what looks like a token or secret: \(found)") }
    }

    deinit { stop() }
}

/// A form POST to the public listener, as a resource server would send it.
func postForm(_ url: String, _ body: String, user: String, password: String) async throws -> (Int, [String: Any]) {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = "POST"
    request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
    let credentials = Data("\(user):\(password)".utf8).base64EncodedString()
    request.setValue("Basic \(credentials)", forHTTPHeaderField: "Authorization")
    request.httpBody = Data(body.utf8)
    let (data, response) = try await URLSession.shared.dataIgnoringCancellation(for: request)
    let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, object)
}
