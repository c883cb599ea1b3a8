// Shared by the targets that need swift-protobuf (connect_proto, connect_json, check_request),
// compiled into each with Support.swift; scripts/fuzz links them against SwiftProtobuf and the
// generated messages, both built with the sanitizers (.build/fuzz/protobuf).
import Foundation
import SwiftProtobuf
import TokendProto

/// Every request message tokend decodes from a Connect body, unary or Watch's envelope
/// (TokendAPI/Connect/PublicConnectController.swift, ConnectWatch.swift, Admin/AdminController.swift).
/// The first byte of an input picks one (modulo the count); the rest is the body.
let connectRequests: [any (Message & Equatable).Type] = [
    Tokend_V1_IntrospectRequest.self,  // 0: IntrospectionService/Introspect, AdminService/Introspect
    Tokend_V1_RevokeRequest.self,  // 1: IntrospectionService/Revoke
    Tokend_V1_IssueTokenRequest.self,  // 2: TokenService/IssueToken, AdminService/IssueToken
    Tokend_V1_TokenRequest.self,  // 3: TokenService/Token
    Tokend_V1_WatchRequest.self,  // 4: RevocationService/Watch (inside its envelope)
    Tokend_V1_CreateClientRequest.self,  // 5: the AdminService from here on
    Tokend_V1_UpdateClientRequest.self,  // 6
    Tokend_V1_ListSigningKeysRequest.self,  // 7
    Tokend_V1_RotateSigningKeyRequest.self,  // 8
    Tokend_V1_ListClientsRequest.self,  // 9
    Tokend_V1_DeleteClientRequest.self,  // 10
    Tokend_V1_RotateClientSecretRequest.self,  // 11
    Tokend_V1_AdminRevokeRequest.self,  // 12
    Tokend_V1_ListRevocationsRequest.self,  // 13
    Tokend_V1_ListAuditEventsRequest.self,  // 14
    Tokend_V1_StatusRequest.self,  // 15
]

/// The message type an input picks, and the body after the selector byte.
func connectRequest(_ data: UnsafePointer<UInt8>, _ size: Int) -> (type: any (Message & Equatable).Type, body: [UInt8])? {
    guard size > 0 else { return nil }
    return (connectRequests[Int(data[0]) % connectRequests.count], Array(UnsafeBufferPointer(start: data + 1, count: size - 1)))
}

/// Binary encoding with map entries sorted by key: swift-protobuf writes a map in its Dictionary's
/// order, which differs between two equal messages (Swift seeds each dictionary's hashing apart).
let deterministicBinary: BinaryEncodingOptions = {
    var options = BinaryEncodingOptions()
    options.useDeterministicOrdering = true
    return options
}()

/// `deterministicBinary`'s counterpart for JSON, on top of the options the codec answers with.
func deterministic(_ options: JSONEncodingOptions) -> JSONEncodingOptions {
    var options = options
    options.useDeterministicOrdering = true
    return options
}

/// Binary decoding that drops unknown fields at every depth, as JSON has no place for them.
let discardingUnknownFields: BinaryDecodingOptions = {
    var options = BinaryDecodingOptions()
    options.discardUnknownFields = true
    return options
}()

/// Short and printable: what a failed property says about a value.
func show(_ bytes: [UInt8]) -> String {
    bytes.count <= 64 ? "\(bytes)" : "\(Array(bytes.prefix(64)))… (\(bytes.count) bytes)"
}
