// swift-tools-version:6.1
// Microbenchmarks of tokend's public building blocks (ordo-one/benchmark). A separate package, so
// that the main package and its CI never build the benchmark tooling.
//
//   cd Benchmarks && swift package benchmark                      # everything (release build)
//   cd Benchmarks && swift package benchmark --filter 'Bloom.*'   # a subset
//
// It needs the main package to export its modules as library products (TokendCore, TokendAPI,
// TokendProto, TokendSQLite, TokendWire); see docs/BENCHMARKS.md.
import PackageDescription

// A path dependency's identity is its directory name, which differs between checkouts
// (`main`, a CI clone's folder, ...): take it from where this manifest lives.
let root = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "tokend"
let tokend = root.lowercased()

let package = Package(
    name: "tokend-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
    ],
    targets: [
        .executableTarget(
            name: "TokendBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TokendCore", package: tokend),
                .product(name: "TokendAPI", package: tokend),
                .product(name: "TokendProto", package: tokend),
                .product(name: "TokendSQLite", package: tokend),
                .product(name: "TokendWire", package: tokend),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Benchmarks/TokendBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ]
)
