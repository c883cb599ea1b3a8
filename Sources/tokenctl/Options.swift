import ArgumentParser
import Foundation
import SwiftProtobuf
import TokendProto

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table
    case json
}

/// Options every command takes.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Admin listener URL (env TOKENCTL_SERVER, default http://127.0.0.1:8081).")
    var server: String?

    @Option(help: "Admin bearer token (env TOKENCTL_ADMIN_TOKEN).")
    var adminToken: String?

    @Option(help: "Output format: table or json.")
    var output: OutputFormat = .table

    var serverURL: String {
        let value = server ?? ProcessInfo.processInfo.environment["TOKENCTL_SERVER"] ?? "http://127.0.0.1:8081"
        return value.hasSuffix("/") ? String(value.dropLast()) : value
    }

    func validate() throws {
        guard let url = URL(string: serverURL), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw ValidationError("--server must be an http(s) URL such as http://127.0.0.1:8081")
        }
    }

    /// The admin token: flag, environment, or (for a loopback server) the dev-mode token file.
    func resolvedAdminToken() throws -> String {
        if let adminToken, !adminToken.isEmpty { return adminToken }
        if let env = ProcessInfo.processInfo.environment["TOKENCTL_ADMIN_TOKEN"], !env.isEmpty { return env }
        let host = URL(string: serverURL)?.host ?? ""
        if ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host) {
            var candidates: [String] = []
            if let dir = ProcessInfo.processInfo.environment["TOKEND_DATA_DIR"], !dir.isEmpty { candidates.append(dir + "/admin-token") }
            candidates.append("./.tokend/admin-token")
            for path in candidates {
                if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                    let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
                    if !token.isEmpty { return token }
                }
            }
        }
        throw CommandFailure(message: "no admin token: set TOKENCTL_ADMIN_TOKEN or pass --admin-token", usage: true)
    }

    /// Calls `tokend.v1.AdminService/<method>` with Connect's JSON codec.
    func call<Response: Message>(_ method: String, _ request: some Message, as: Response.Type = Response.self) async throws -> Response {
        let token = try resolvedAdminToken()
        let endpoint = serverURL + "/tokend.v1.AdminService/" + method
        var urlRequest = URLRequest(url: URL(string: endpoint)!)
        urlRequest.httpMethod = "POST"
        urlRequest.setValue("application/json", forHTTPHeaderField: "Content-Type")
        urlRequest.setValue("1", forHTTPHeaderField: "Connect-Protocol-Version")
        urlRequest.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        urlRequest.timeoutInterval = 30
        var encoding = JSONEncodingOptions()
        encoding.preserveProtoFieldNames = true
        urlRequest.httpBody = try request.jsonUTF8Data(options: encoding)
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: urlRequest)
        } catch {
            throw CommandFailure(message: "cannot reach tokend at \(serverURL): \(error.localizedDescription)")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard status == 200 else {
            if let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let code = object["code"] as? String {
                throw CommandFailure(message: "\(code): \(object["message"] as? String ?? "request refused") (HTTP \(status))")
            }
            throw CommandFailure(message: "\(endpoint) answered HTTP \(status)")
        }
        var decoding = JSONDecodingOptions()
        decoding.ignoreUnknownFields = true
        do {
            return try Response(jsonUTF8Data: data, options: decoding)
        } catch {
            throw CommandFailure(message: "unexpected answer from \(endpoint)")
        }
    }
}

/// Reads a token given as `-` from standard input.
func resolveToken(_ value: String) throws -> String {
    guard value == "-" else { return value }
    let data = FileHandle.standardInput.readDataToEndOfFile()
    let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard !token.isEmpty else { throw CommandFailure(message: "no token on standard input", usage: true) }
    return token
}

/// Parses `90`, `90s`, `15m`, `1h`, `30d` into seconds.
func parseTTL(_ text: String) -> Int64? {
    let units: [(String, Int64)] = [("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
    for (suffix, factor) in units where text.hasSuffix(suffix) {
        if let value = Int64(text.dropLast(suffix.count)), value > 0 { return value * factor }
    }
    if let value = Int64(text), value > 0 { return value }
    return nil
}
