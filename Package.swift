// swift-tools-version:6.1
import PackageDescription

// As the Hummingbird anchor: existentials spelled `any`, and members visible only through imports.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "tokend",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tokend", targets: ["tokend"]),
        .executable(name: "tokenctl", targets: ["tokenctl"]),
        // For Benchmarks/ (a separate package that measures these modules).
        .library(name: "TokendCore", targets: ["TokendCore"]),
        .library(name: "TokendAPI", targets: ["TokendAPI"]),
        .library(name: "TokendProto", targets: ["TokendProto"]),
        .library(name: "TokendSQLite", targets: ["TokendSQLite"]),
        .library(name: "TokendWire", targets: ["TokendWire"]),
        // For resource servers and gateways: follow a tokend's revocation stream.
        .library(name: "TokendClient", targets: ["TokendClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
    ],
    targets: [
        // Domain: token records, policy, hashing, store protocols. No NIO, HTTP or SQL.
        .target(
            name: "TokendCore",
            dependencies: [
                "TokendWire",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TokendPostgres",
            dependencies: [
                "TokendCore",
                "TokendWire",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TokendSQLite",
            dependencies: [
                "TokendCore",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Generated swift-protobuf messages (scripts/generate-proto); shared by server and CLI. Beside
        // Generated/, the pure code over them that the fuzzer builds with them (scripts/fuzz).
        .target(
            name: "TokendProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["Generated/PROTO_SHA256"],
            swiftSettings: swiftSettings
        ),
        // The hand-written wire parsers and writer: form bodies, Basic and Bearer credentials, media
        // types, JSON.
        // Swift and Foundation only (no NIO, no Core), so that a fuzzer can build it alone.
        .target(name: "TokendWire", swiftSettings: swiftSettings),
        // zlib, for Gunzip (TokendAPI) and the gzip fuzz target.
        .systemLibrary(name: "CTokendZlib"),
        .target(
            name: "TokendAPI",
            dependencies: [
                "TokendCore",
                "TokendProto",
                "TokendWire",
                "CTokendZlib",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The gRPC listener: tokend's services, Envoy ext_authz, health and reflection over HTTP/2.
        // Its service stubs are generated (scripts/generate-proto) into Generated/ and committed.
        .target(
            name: "TokendGRPC",
            dependencies: [
                "TokendCore", "TokendAPI", "TokendProto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // A client library for resource servers and for replicas that follow a hub: the revocation
        // stream over gRPC. No Hummingbird, no store, no TokendCore.
        .target(
            name: "TokendClient",
            dependencies: [
                "TokendProto", "TokendWire",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        // The composition root: configuration, store backends, the whole server as one ServiceGroup.
        .target(
            name: "TokendServer",
            dependencies: [
                "TokendCore", "TokendPostgres", "TokendSQLite", "TokendAPI", "TokendGRPC", "TokendClient", "TokendProto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "tokend",
            dependencies: [
                "TokendCore", "TokendServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "tokenctl",
            dependencies: [
                "TokendProto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: swiftSettings
        ),
        // scripts/bench's gRPC reference: a grpc-swift-2 server with one empty unary method.
        .executableTarget(
            name: "tokend-bench-grpc-baseline",
            dependencies: [
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Benchmarks/GRPCBaseline",
            swiftSettings: swiftSettings
        ),
        // scripts/bench's fan-out row: Watch subscribers on one hub while revocations are committed.
        .executableTarget(
            name: "tokend-bench-fanout",
            dependencies: ["TokendClient", "TokendProto"],
            path: "Benchmarks/FanOut",
            swiftSettings: swiftSettings
        ),
        // Shared by the test targets: fresh stores (a new PostgreSQL database per test), a manual clock.
        .target(
            name: "TokendTestSupport",
            dependencies: [
                "TokendCore", "TokendPostgres", "TokendSQLite",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/TokendTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "TokendCoreTests", dependencies: ["TokendCore", "TokendTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "TokendStoreTests",
            dependencies: [
                "TokendCore", "TokendPostgres", "TokendSQLite", "TokendTestSupport",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "TokendWireTests", dependencies: ["TokendWire"], swiftSettings: swiftSettings),
        .testTarget(name: "TokendClientTests", dependencies: ["TokendClient", "TokendProto"], swiftSettings: swiftSettings),
        .testTarget(
            name: "TokendAPITests",
            dependencies: [
                "TokendCore", "TokendAPI", "TokendProto", "TokendPostgres", "TokendSQLite", "TokendTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TokendServerTests",
            dependencies: [
                "TokendCore", "TokendServer", "TokendClient", "TokendPostgres", "TokendTestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TokendGRPCTests",
            dependencies: [
                "TokendCore", "TokendGRPC", "TokendProto", "TokendServer", "TokendTestSupport",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "TokendCLITests",
            dependencies: [
                "TokendTestSupport", "TokendClient", "TokendProto",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
