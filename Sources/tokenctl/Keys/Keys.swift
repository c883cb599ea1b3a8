import ArgumentParser
import Foundation
import TokendProto

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The replica set's RFC 9701 signing keys (signed introspection answers).",
        subcommands: [List.self, Rotate.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the signing keys: the current one first, then rotated-out ones still published.",
            discussion: "Example:\n  tokenctl keys list --output json"
        )
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let response: Tokend_V1_ListSigningKeysResponse = try await connection.call("ListSigningKeys", Tokend_V1_ListSigningKeysRequest())
            switch connection.output {
            case .json:
                Output.json(response.keys.map { k in
                    var key: [String: Any] = ["kid": k.kid, "alg": k.alg, "created_at": k.createdAt, "current": k.current]
                    if k.retiresAt != 0 { key["retires_at"] = k.retiresAt }
                    return key
                })
            case .table:
                Output.table(
                    ["KID", "ALG", "CREATED", "STATE"],
                    response.keys.map { k in
                        [k.kid, k.alg, Output.time(k.createdAt), k.current ? "current" : "published until \(Output.time(k.retiresAt))"]
                    }
                )
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new signing key current; the previous one stays published for TOKEND_SIGNING_KEY_OVERLAP.",
            discussion: "Every replica signs with the new key within the propagation bound.\nExample:\n  tokenctl keys rotate --output json"
        )
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let response: Tokend_V1_RotateSigningKeyResponse = try await connection.call("RotateSigningKey", Tokend_V1_RotateSigningKeyRequest())
            switch connection.output {
            case .json:
                var out: [String: Any] = ["kid": response.kid]
                if !response.previousKid.isEmpty {
                    out["previous_kid"] = response.previousKid
                    out["previous_retires_at"] = response.previousRetiresAt
                }
                Output.json(out)
            case .table:
                Output.fields([
                    ("kid", response.kid), ("previous_kid", response.previousKid.isEmpty ? "-" : response.previousKid),
                    ("previous_retires_at", response.previousRetiresAt == 0 ? "-" : Output.time(response.previousRetiresAt)),
                ])
            }
        }
    }
}
