// Microbenchmarks of what tokend's modules expose publicly: the per-request building blocks of an
// introspection, and the whole in-process introspection from memory. Times and allocation counts
// (malloc interposer) per operation; the Bloom filter also reports its size as custom metrics.
//
//   cd Benchmarks && swift package benchmark
import Benchmark
import Foundation
import Logging
import SwiftProtobuf
import TokendAPI
import TokendCore
import TokendProto
import TokendSQLite
import TokendWire

/// Mutable state shared with a benchmark closure. Each benchmark runs on one task at a time.
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

/// A deterministic generator, so that runs see the same tokens and the same filter contents.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// `count` raw tokens in tokend's format: tkd_at_ + 43 base64url characters of 32 random bytes.
func makeTokens(_ count: Int, seed: UInt64) -> [String] {
    var rng = SplitMix64(state: seed)
    return (0..<count).map { _ in
        TokenKind.access.prefix + Base64URL.encode((0..<32).map { _ in UInt8.random(in: .min ... .max, using: &rng) })
    }
}

func record(for token: String, index: Int, now: Date) -> TokenRecord {
    TokenRecord(
        hash: TokenHash(token: token),
        kind: .access,
        clientID: "bench",
        subject: "user-\(index % 1000)",
        username: nil,
        scope: "read write",
        audiences: ["api"],
        issuer: "https://bench.invalid",
        issuedAt: now.addingTimeInterval(-60),
        notBefore: nil,
        expiresAt: now.addingTimeInterval(86_400),
        jti: "bench-\(index)",
        grantID: "bench-grant",
        confirmation: nil,
        extra: [:]
    )
}

func sampleResponse() -> Tokend_V1_IntrospectResponse {
    var r = Tokend_V1_IntrospectResponse()
    r.active = true
    r.scope = "read write"
    r.clientID = "resource-server"
    r.tokenType = "Bearer"
    r.exp = 1_900_000_000
    r.iat = 1_899_996_400
    r.sub = "alice"
    r.aud = ["api"]
    r.iss = "https://tokend.example"
    r.jti = "Xq3Zb0m9Q1yXy0c5Y2xZbw"
    return r
}

let jsonEncoding: JSONEncodingOptions = {
    var options = JSONEncodingOptions()
    options.preserveProtoFieldNames = true  // as tokend's Connect codec writes
    return options
}()

// Wall clock per operation and mallocs per operation (the malloc interposer counts them). CPU time
// is left out: its 10 ms resolution says nothing about a sub-microsecond operation.
let timeAndAllocations: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal]
let bitsPerEntryMetric = BenchmarkMetric.custom("bits per entry ×100", polarity: .prefersSmaller, useScalingFactor: false)
let falsePositivesMetric = BenchmarkMetric.custom("false positives per 1M at capacity", polarity: .prefersSmaller, useScalingFactor: false)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: timeAndAllocations,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )

    // MARK: hashing and parsing at the edge

    let tokens = makeTokens(100_000, seed: 1)

    Benchmark("TokenHash(token:)") { benchmark in
        for i in benchmark.scaledIterations {
            blackHole(TokenHash(token: tokens[i % tokens.count]))
        }
    }

    let formBodies = tokens.prefix(1000).map { Array("token=\($0)&token_type_hint=access_token".utf8) }
    Benchmark("FormBody(bytes:) token + hint") { benchmark in
        for i in benchmark.scaledIterations {
            blackHole(formBodies[i % formBodies.count].withUnsafeBytes { try? FormBody(bytes: $0) })
        }
    }

    // MARK: Bloom filter (revoked token hashes)

    let hashes = tokens.map { TokenHash(token: $0) }
    let absent = makeTokens(100_000, seed: 2).map { TokenHash(token: $0) }
    for rate in [0.001, 0.01] {
        let label = rate == 0.001 ? "0.1%" : "1%"
        let capacity = 1_000_000

        // Sizing and the false-positive rate actually reached at capacity, once per run.
        let sized = Box<(bitsPerEntry: Int, falsePositives: Int)?>(nil)
        let measureSizing: @Sendable () -> (bitsPerEntry: Int, falsePositives: Int) = {
            if let known = sized.value { return known }
            var filter = BloomFilter(capacity: capacity, falsePositiveRate: rate)
            var rng = SplitMix64(state: 3)
            func randomHash() -> TokenHash { TokenHash(bytes: (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &rng) }) }
            for _ in 0..<capacity { filter.insert(randomHash()) }
            var positives = 0
            for _ in 0..<1_000_000 where filter.mightContain(randomHash()) { positives += 1 }
            let result = (Int((filter.bitsPerEntry * 100).rounded()), positives)
            sized.value = result
            return result
        }

        let insertFilter = Box(BloomFilter(capacity: capacity, falsePositiveRate: rate))
        Benchmark(
            "BloomFilter.insert p=\(label)",
            configuration: .init(metrics: timeAndAllocations + [bitsPerEntryMetric, falsePositivesMetric])
        ) { benchmark in
            for i in benchmark.scaledIterations {
                blackHole(insertFilter.value.insert(hashes[i % hashes.count]))
            }
            benchmark.stopMeasurement()
            let sizing = measureSizing()
            benchmark.measurement(bitsPerEntryMetric, sizing.bitsPerEntry)
            benchmark.measurement(falsePositivesMetric, sizing.falsePositives)
        }

        // A filter holding 100,000 revoked hashes, as a replica's view does after the seed.
        let full = Box(BloomFilter(capacity: 100_000, falsePositiveRate: rate))
        for h in hashes { full.value.insert(h) }
        Benchmark("BloomFilter.mightContain absent p=\(label)") { benchmark in
            for i in benchmark.scaledIterations {
                blackHole(full.value.mightContain(absent[i % absent.count]))
            }
        }
        Benchmark("BloomFilter.mightContain present p=\(label)") { benchmark in
            for i in benchmark.scaledIterations {
                blackHole(full.value.mightContain(hashes[i % hashes.count]))
            }
        }
    }

    // MARK: token cache

    let now = Date()
    let cache = TokenCache(capacity: 1_000_000)
    for (i, t) in tokens.enumerated() { cache.put(record(for: t, index: i, now: now), now: now) }
    Benchmark("TokenCache.get hit (100k entries)") { benchmark in
        let at = Date()
        for i in benchmark.scaledIterations {
            blackHole(cache.get(hashes[i % hashes.count], now: at))
        }
    }
    Benchmark("TokenCache.get miss (100k entries)") { benchmark in
        let at = Date()
        for i in benchmark.scaledIterations {
            blackHole(cache.get(absent[i % absent.count], now: at))
        }
    }

    // MARK: Connect codecs

    let response = sampleResponse()
    let responseBytes: [UInt8] = try! response.serializedBytes()
    let responseJSON: [UInt8] = try! response.jsonUTF8Bytes(options: jsonEncoding)
    var requestMessage = Tokend_V1_IntrospectRequest()
    requestMessage.token = tokens[0]
    let requestBytes: [UInt8] = try! requestMessage.serializedBytes()

    Benchmark("IntrospectRequest decode proto") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? Tokend_V1_IntrospectRequest(serializedBytes: requestBytes))
        }
    }
    Benchmark("IntrospectResponse encode proto") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? response.serializedBytes() as [UInt8])
        }
    }
    Benchmark("IntrospectResponse decode proto") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? Tokend_V1_IntrospectResponse(serializedBytes: responseBytes))
        }
    }
    Benchmark("IntrospectResponse encode JSON") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? response.jsonUTF8Bytes(options: jsonEncoding) as [UInt8])
        }
    }
    Benchmark("IntrospectResponse decode JSON") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try? Tokend_V1_IntrospectResponse(jsonUTF8Bytes: responseJSON))
        }
    }

    // MARK: whole in-process introspection (Introspector.answer)

    struct Replica: @unchecked Sendable {
        let store: SQLiteStore
        let directory: String
        let memory: Introspector
        let storeOnly: Introspector
        let tokens: [String]
    }
    // Embedded store with 10,000 tokens and 1,000 revocations; memory pre-warmed by one pass.
    let setupReplica: @Sendable () async throws -> Replica = {
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokend-bench-\(UUID().uuidString)").path
        let store = try await SQLiteStore.open(directory: directory, logger: logger)
        let working = Array(tokens.prefix(10_000))
        let at = Date()
        try await store.insertTokens(working.enumerated().map { record(for: $0.element, index: $0.offset, now: at) }, audit: nil)
        let view = RevocationView()
        view.apply(
            absent.prefix(1000).enumerated().map { i, h in
                RevocationEntry(
                    seq: Int64(i + 1),
                    kind: .token,
                    value: "r\(i)",
                    tokenHashes: [h],
                    reason: "bench",
                    revokedCount: 1,
                    createdAt: at,
                    expiresAt: at.addingTimeInterval(86_400)
                )
            }
        )
        view.markSynced(at: Date())
        let memory = ReplicaMemory(cache: TokenCache(capacity: 1_000_000), view: view, maxStaleness: 86_400)
        let withMemory = Introspector(store: store, memory: memory, logger: logger)
        for t in working {
            let (result, _) = try await withMemory.answer(token: t, audiences: [])
            guard case .active = result else { fatalError("seeded token not active") }
        }
        let (_, source) = try await withMemory.answer(token: working[0], audiences: ["api"])
        precondition(source == .memory, "warm cache did not answer from memory")
        return Replica(
            store: store,
            directory: directory,
            memory: withMemory,
            storeOnly: Introspector(store: store, memory: nil, logger: logger),
            tokens: working
        )
    }
    let replica = Box<Replica?>(nil)
    let teardownReplica: @Sendable () async throws -> Void = {
        if let r = replica.value {
            try await r.store.shutdown()
            try? FileManager.default.removeItem(atPath: r.directory)
            replica.value = nil
        }
    }

    Benchmark(
        "Introspector.answer from memory (warm, audience check)",
        configuration: .init(
            setup: { replica.value = try await setupReplica() },
            teardown: teardownReplica
        )
    ) { benchmark in
        let r = replica.value!
        for i in benchmark.scaledIterations {
            blackHole(try? await r.memory.answer(token: r.tokens[i % r.tokens.count], audiences: ["api"]))
        }
    }
    Benchmark(
        "Introspector.answer from the SQLite store (no memory)",
        configuration: .init(
            scalingFactor: .one,
            maxDuration: .seconds(2),
            setup: { replica.value = try await setupReplica() },
            teardown: teardownReplica
        )
    ) { benchmark in
        let r = replica.value!
        for i in benchmark.scaledIterations {
            blackHole(try? await r.storeOnly.answer(token: r.tokens[(i &* 7919) % r.tokens.count], audiences: ["api"]))
        }
    }
}
