import Foundation
import Testing
import TokendTestSupport

extension Replica {
    /// `POST /oauth2/token` with a refresh token, client_secret_basic.
    func refresh(_ token: String, as client: ClientCredentials) async throws -> HTTPAnswer {
        try await ClusterHTTP.send(
            publicURL + "/oauth2/token",
            body: Data("grant_type=refresh_token&refresh_token=\(token)".utf8),
            headers: ["Authorization": client.basic, "Content-Type": "application/x-www-form-urlencoded"]
        )
    }

    /// The `kid` of this replica's RFC 9701 answer about `token`.
    func signingKeyID(introspecting token: String, as client: ClientCredentials) async throws -> String? {
        let answer = try await ClusterHTTP.send(
            publicURL + "/oauth2/introspect",
            body: Data("token=\(token)".utf8),
            headers: [
                "Authorization": client.basic, "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/token-introspection+jwt",
            ]
        )
        guard answer.status == 200, let header = answer.text.split(separator: ".").first else { return nil }
        var base64 = header.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64), let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
        return json["kid"] as? String
    }
}

extension ClusterSuites {
    /// Issue 12 across replicas: a refresh token's reuse ends its grant on every replica within the
    /// propagation bound, and a signing key rotation reaches every replica the same way.
    @Suite(.serialized) struct ClusterTokenTests {
        @Test func refreshReuseAndKeyRotationReachEveryReplica() async throws {
            try await Cluster.run(replicas: 3) { replicas, _ in
                let (a, b, c) = (replicas[0], replicas[1], replicas[2])
                let app = try await a.createClient("app", roles: ["issue", "introspect"])
                let issued = try await a.issue(client: "app", subject: "alice", refresh: true)
                let first = try #require(issued.refreshToken)

                // Rotate twice, on two other replicas.
                let r1 = try await b.refresh(first, as: app)
                #expect(r1.status == 200, "\(r1)")
                let second = try #require(r1.json["refresh_token"] as? String)
                let r2 = try await c.refresh(second, as: app)
                #expect(r2.status == 200, "\(r2)")
                let latest = try #require(r2.json["access_token"] as? String)
                for replica in replicas {
                    let answer = try await replica.introspect(latest, as: app)
                    #expect(answer.active == true, "\(replica): \(answer)")  // now cached everywhere
                }

                // Replaying the first refresh token on A: invalid_grant, and the grant ends everywhere.
                let replay = try await a.refresh(first, as: app)
                let acknowledged = ContinuousClock.now
                #expect(replay.status == 400 && replay.error == "invalid_grant", "\(replay)")
                for replica in [b, c] {
                    let latency = try await ClusterTests.timeUntilInactive(replica, latest, app, since: acknowledged)
                    #expect(latency != nil, "\(replica) still answers active:false for the grant's access token")
                    if let latency { print("refresh reuse: \(replica) inactive after \(formatMS(latency.milliseconds))") }
                }

                // A key rotation on A: B and C sign with the new key within the bound.
                let before = try #require(try await b.signingKeyID(introspecting: latest, as: app))
                let rotated = try await a.admin("RotateSigningKey", [:])
                let kid = try #require(rotated.json["kid"] as? String, "\(rotated)")
                #expect(kid != before && rotated.json["previous_kid"] as? String == before)
                let rotatedAt = ContinuousClock.now
                for replica in [b, c] {
                    try await eventually("\(replica) signs with the new key", within: .seconds(5)) {
                        try await replica.signingKeyID(introspecting: latest, as: app) == kid
                    }
                    print("key rotation: \(replica) signs with \(kid) after \(formatMS((ContinuousClock.now - rotatedAt).milliseconds))")
                }
            }
        }
    }
}
