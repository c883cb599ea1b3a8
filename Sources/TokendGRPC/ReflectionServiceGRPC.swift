import Foundation
import GRPCCore
import SwiftProtobuf
import TokendProto

/// What server reflection knows: the descriptors of proto/ (generated into `GeneratedDescriptors`)
/// indexed by file name and by fully-qualified symbol, and the services this listener serves.
struct ReflectionIndex: Sendable {
    private let files: [String: Google_Protobuf_FileDescriptorProto]
    private let fileOfSymbol: [String: String]
    let services: [String]

    /// `served`: the fully-qualified names of the services to list (not every service in proto/ is
    /// served here: the admin service is on the admin listener).
    init(served: [String]) throws {
        guard let data = Data(base64Encoded: GeneratedDescriptors.fileDescriptorSetBase64) else {
            throw RPCError(code: .internalError, message: "descriptor set is not base64")
        }
        let set = try Google_Protobuf_FileDescriptorSet(serializedBytes: data)
        var files: [String: Google_Protobuf_FileDescriptorProto] = [:]
        var fileOfSymbol: [String: String] = [:]
        for file in set.file {
            files[file.name] = file
            let prefix = file.package.isEmpty ? "" : file.package + "."
            for symbol in Self.symbols(of: file, prefix: prefix) { fileOfSymbol[symbol] = file.name }
        }
        self.files = files
        self.fileOfSymbol = fileOfSymbol
        self.services = served.sorted()
    }

    private static func symbols(of file: Google_Protobuf_FileDescriptorProto, prefix: String) -> [String] {
        var names: [String] = []
        for service in file.service {
            names.append(prefix + service.name)
            for method in service.method { names.append(prefix + service.name + "." + method.name) }
        }
        for message in file.messageType { names += symbols(of: message, prefix: prefix) }
        for enumeration in file.enumType { names.append(prefix + enumeration.name) }
        for extensionField in file.extension { names.append(prefix + extensionField.name) }
        return names
    }

    private static func symbols(of message: Google_Protobuf_DescriptorProto, prefix: String) -> [String] {
        let name = prefix + message.name
        var names = [name]
        for field in message.field { names.append(name + "." + field.name) }
        for nested in message.nestedType { names += symbols(of: nested, prefix: name + ".") }
        for enumeration in message.enumType { names.append(name + "." + enumeration.name) }
        return names
    }

    /// The serialized file and every file it imports, transitively (each once, the file first).
    func fileWithDependencies(_ name: String) -> [Data]? {
        guard files[name] != nil else { return nil }
        var order: [String] = []
        var seen: Set<String> = []
        var pending = [name]
        while let next = pending.first {
            pending.removeFirst()
            guard !seen.contains(next), let file = files[next] else { continue }
            seen.insert(next)
            order.append(next)
            pending += file.dependency
        }
        return order.compactMap { try? files[$0]?.serializedData() }
    }

    func file(containing symbol: String) -> String? {
        let trimmed = symbol.hasPrefix(".") ? String(symbol.dropFirst()) : symbol
        return fileOfSymbol[trimmed]
    }

    /// One reflection answer (v1 messages; v1alpha's are the same on the wire).
    func answer(_ request: Grpc_Reflection_V1_ServerReflectionRequest) -> Grpc_Reflection_V1_ServerReflectionResponse {
        var response = Grpc_Reflection_V1_ServerReflectionResponse()
        response.validHost = request.host
        response.originalRequest = request
        func notFound(_ message: String) {
            response.errorResponse = .with {
                $0.errorCode = Int32(RPCError.Code.notFound.rawValue)
                $0.errorMessage = message
            }
        }
        func files(_ name: String?) {
            if let name, let data = fileWithDependencies(name) {
                response.fileDescriptorResponse = .with { $0.fileDescriptorProto = data }
            } else {
                notFound("file not found")
            }
        }
        switch request.messageRequest {
        case .listServices:
            response.listServicesResponse = .with { list in
                list.service = services.map { name in .with { $0.name = name } }
            }
        case .fileByFilename(let name):
            files(name)
        case .fileContainingSymbol(let symbol):
            files(file(containing: symbol))
        case .fileContainingExtension:
            notFound("no extensions are defined")
        case .allExtensionNumbersOfType(let type):
            if file(containing: type) != nil {
                response.allExtensionNumbersResponse = .with { $0.baseTypeName = type }
            } else {
                notFound("type not found")
            }
        case .none:
            response.errorResponse = .with {
                $0.errorCode = Int32(RPCError.Code.invalidArgument.rawValue)
                $0.errorMessage = "empty reflection request"
            }
        }
        return response
    }
}

/// `grpc.reflection.v1.ServerReflection`: one answer per request on the bidirectional stream.
struct ReflectionServiceGRPC: Grpc_Reflection_V1_ServerReflection.ServiceProtocol {
    let index: ReflectionIndex

    func serverReflectionInfo(
        request: StreamingServerRequest<Grpc_Reflection_V1_ServerReflectionRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Grpc_Reflection_V1_ServerReflectionResponse> {
        StreamingServerResponse { writer in
            for try await message in request.messages {
                try await writer.write(index.answer(message))
            }
            return [:]
        }
    }
}

/// `grpc.reflection.v1alpha.ServerReflection` (what Python's grpcio-reflection client speaks): the
/// same answers, since v1alpha's messages are v1's field for field.
struct ReflectionAlphaServiceGRPC: Grpc_Reflection_V1alpha_ServerReflection.ServiceProtocol {
    let index: ReflectionIndex

    func serverReflectionInfo(
        request: StreamingServerRequest<Grpc_Reflection_V1alpha_ServerReflectionRequest>,
        context: ServerContext
    ) async throws -> StreamingServerResponse<Grpc_Reflection_V1alpha_ServerReflectionResponse> {
        StreamingServerResponse { writer in
            for try await message in request.messages {
                let v1 = try Grpc_Reflection_V1_ServerReflectionRequest(serializedBytes: message.serializedBytes() as [UInt8])
                let answer: [UInt8] = try index.answer(v1).serializedBytes()
                try await writer.write(Grpc_Reflection_V1alpha_ServerReflectionResponse(serializedBytes: answer))
            }
            return [:]
        }
    }
}
