import Foundation

/// What the embedded dev mode prints once both listeners are up.
enum FirstRunBanner {
    static func print(publicURL: String, adminURL: String, adminTokenPath: String) {
        FileHandle.standardOutput.write(
            Data(
                """

                tokend is running with the embedded store (dev mode).
                  public API:  \(publicURL)   (RFC 7662 /oauth2/introspect, RFC 7009 /oauth2/revoke, Connect RPC)
                  admin API:   \(adminURL)
                  admin token: \(adminTokenPath)   (tokenctl finds it when run from this directory)

                Try next:
                  tokenctl clients create resource-server --role introspect
                  tokenctl tokens issue --client resource-server --subject alice
                  tokenctl tokens introspect <access_token>

                """.utf8
            )
        )
    }
}
