import Testing
import TokendCore
import TokendTestSupport

/// The log check used on every tokend process of the suite finds tokens and secrets, and only them.
@Suite struct LogSecretsTests {
    @Test func findsRawTokensAndSecretsButNotWhatTokendLogs() {
        let token = OpaqueToken.generate(.access)
        let secret = ClientSecret.generate()
        let clean = #"{"msg":"token revoked","token_hash":"5da817dcc843","jti":"1CmakOzas76FjG1mw-Q2wg","request_id":"4ee2b9d285a4f721de8d70fea36d1946"}"#
        #expect(secretsInLog(clean).isEmpty)
        #expect(secretsInLog(clean + "\n" + #"{"msg":"oops","token":"\#(token)"}"#).count == 1)
        #expect(secretsInLog("client_secret=\(secret)&x=1").count == 1)
        #expect(secretsInLog("Basic " + secret).first?.hasPrefix(String(secret.prefix(6))) == true)
        #expect(secretsInLog("Basic " + secret).first?.contains(secret) == false, "findings are redacted")
    }
}
