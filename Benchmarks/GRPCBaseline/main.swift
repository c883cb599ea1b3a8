// The reference point of the gRPC rows of scripts/bench: a grpc-swift-2 server whose one method,
// /bench.v1.Baseline/Empty, answers an empty message at once. tokend's gRPC introspection from
// memory is measured against it, on the same machine in the same run.
//
//   tokend-bench-grpc-baseline [PORT]    (default 0: a free port; the bound port is printed)
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import SwiftProtobuf

struct BaselineService: RegistrableRPCService {
    static let empty = MethodDescriptor(fullyQualifiedService: "bench.v1.Baseline", method: "Empty")

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Self.empty,
            deserializer: ProtobufDeserializer<Google_Protobuf_Empty>(),
            serializer: ProtobufSerializer<Google_Protobuf_Empty>()
        ) { request, _ in
            for try await _ in request.messages {}
            return StreamingServerResponse(single: ServerResponse(message: Google_Protobuf_Empty()))
        }
    }
}

let port = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 0
let server = GRPCServer(
    transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: .plaintext),
    services: [BaselineService()]
)
try await withThrowingDiscardingTaskGroup { group in
    group.addTask { try await server.serve() }
    if let address = try await server.listeningAddress?.ipv4 {
        FileHandle.standardOutput.write(Data("listening on \(address.port)\n".utf8))
    }
}
