import Foundation
import ServiceLifecycle
import Testing
import TokendCore
import TokendServer
import TokendTestSupport

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `/authz` and the TokenReview webhook on real sockets, in the service `tokend serve` builds:
/// the configured Kubernetes prefixes reach the answers, and what the HTTP layer itself does with
/// oversized headers.
@Suite struct GatewayServingTests {
    @Test func kubernetesPrefixesAreReadOnceWithDefaultsAndDashForNone() throws {
        let defaults = try ServeConfiguration { _ in nil }
        #expect(defaults.kubernetesUsernamePrefix == "tokend:" && defaults.kubernetesGroupsPrefix == "tokend:")
        let set = try ServeConfiguration { ["TOKEND_K8S_USERNAME_PREFIX": "oidc:", "TOKEND_K8S_GROUPS_PREFIX": "-"][$0] }
        #expect(set.kubernetesUsernamePrefix == "oidc:" && set.kubernetesGroupsPrefix == "")
        #expect(throws: ConfigurationError.self) { try ServeConfiguration { $0 == "TOKEND_K8S_GROUPS_PREFIX" ? "a\nb" : nil } }
        #expect(ServeConfiguration.names.contains("TOKEND_K8S_USERNAME_PREFIX") && ServeConfiguration.names.contains("TOKEND_K8S_GROUPS_PREFIX"))
    }

    @Test(arguments: StoreKind.allCases)
    func forwardAuthAndTokenReviewServeOnTheLiveListener(kind: StoreKind) async throws {
        let prefixes = ["TOKEND_K8S_USERNAME_PREFIX": "sso:", "TOKEND_K8S_GROUPS_PREFIX": "-"]
        try await withLiveServer(kind, settings: prefixes) { server, urls in
            let admin = AdminAPI(url: urls.admin, token: server.adminToken)
            let created = try await admin.call("CreateClient", ["client_id": "gateway", "roles": ["introspect"]])
            let secret = try #require(created["client_secret"] as? String)
            let issued = try await admin.call(
                "IssueToken",
                ["client_id": "gateway", "subject": "alice", "scope": "read", "extra": ["groups": "dev, ops"]]
            )
            let token = try #require(issued["access_token"] as? String)
            let gateway = "Basic " + Data("gateway:\(secret)".utf8).base64EncodedString()

            // /authz with a method no router enumerates, below /authz/.
            let allowed = try await call(
                urls.public + "/authz/dav/file?scope=read",
                method: "PROPFIND",
                [
                    "X-Tokend-Authorization": gateway, "Authorization": "Bearer \(token)",
                ]
            )
            #expect(allowed.status == 200 && allowed.body.isEmpty, "\(allowed.status)")
            #expect(allowed.headers["x-tokend-sub"] == "alice" && allowed.headers["cache-control"] == "no-store")
            // A 10 KB header reaches tokend (the HTTP layer takes 80 KiB): a token over 4 KiB is inactive.
            let tenKB = try await call(
                urls.public + "/authz",
                [
                    "X-Tokend-Authorization": gateway, "Authorization": "Bearer " + String(repeating: "A", count: 10 * 1024),
                ]
            )
            #expect(tenKB.status == 401 && tenKB.headers["www-authenticate"] == #"Bearer realm="tokend", error="invalid_token""#)
            // Past 80 KiB of header the HTTP layer (swift-nio's decoder, Hummingbird's answer) refuses
            // the request before any route: 400 with an empty body, then it closes the connection
            // (which the client may see first, while still sending).
            let huge = try? await call(
                urls.public + "/authz",
                [
                    "X-Tokend-Authorization": gateway, "Authorization": "Bearer " + String(repeating: "A", count: 96 * 1024),
                ]
            )
            #expect(huge == nil || huge?.status == 400, "\(huge?.status ?? 0)")

            // TokenReview with the configured prefixes: "sso:" for users, none for groups.
            let review = try await call(
                urls.public + "/apis/authentication.k8s.io/v1/tokenreviews",
                method: "POST",
                ["Authorization": gateway, "Content-Type": "application/json"],
                body: try JSONSerialization.data(withJSONObject: [
                    "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": ["token": token],
                ])
            )
            #expect(review.status == 200)
            let status = (try JSONSerialization.jsonObject(with: review.body) as? [String: Any])?["status"] as? [String: Any]
            let user = status?["user"] as? [String: Any]
            #expect(status?["authenticated"] as? Bool == true)
            #expect(user?["username"] as? String == "sso:alice")
            #expect(user?["groups"] as? [String] == ["dev", "ops"])
        }
    }
}

/// One request; the status, lower-cased response headers and body.
private func call(
    _ url: String,
    method: String = "GET",
    _ headers: [String: String],
    body: Data? = nil
) async throws -> (status: Int, headers: [String: String], body: Data) {
    var request = URLRequest(url: URL(string: url)!)
    request.httpMethod = method
    for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
    request.httpBody = body
    let (data, response) = try await URLSession.shared.dataIgnoringCancellation(for: request)
    let http = response as? HTTPURLResponse
    var fields: [String: String] = [:]
    for (name, value) in http?.allHeaderFields ?? [:] {
        if let name = name as? String, let value = value as? String { fields[name.lowercased()] = value }
    }
    return (http?.statusCode ?? 0, fields, data)
}
