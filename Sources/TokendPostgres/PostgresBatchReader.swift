import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization
import TokendCore

/// The HTTP fast path's reads of cache misses (`TokenBatchReader`), on connections of its own and
/// driven by event loop futures: a batch is written, read, decoded and answered on its
/// connection's event loop, with no task and no hop through the concurrency pool. Through the
/// pool (`PostgresStore.tokens(hashes:)` under `TimeLimitedStore`) a batch woke a worker task, a
/// task for its time limit and its timer, and a task for its connection lease, each a thread
/// hand-off on a busy 2-core machine (docs/BENCHMARKS.md, issue 14).
///
/// Each of its `connections` (2 by default: the fast path reads at most two batches at once; a
/// read goes to the line with the fewest reads, its reads queue on its connection) opens when
/// first needed (`application_name` `tokend-fast-path`) and again after a read on it failed. The
/// query is the store's own (`PostgresStore.TokensByHash`, one `= ANY($1)` for the batch): a named
/// prepared statement on a direct connection, an unnamed one through a transaction pooler.
///
/// A read's time limit is a timer on the event loop. When it fires first, the read is answered
/// `StoreTimeout`, and if its query was written, the connection is closed (which fails a query
/// stuck on a dead server; the next read opens a new one). A read still waiting for its
/// connection to open leaves the opening alone: one connect at a time per line, bounded by the
/// connect timeout, and connect plus prepare by `openingLimit`. A failed read gives its
/// connection up before it is answered, since its completion may start the next read at once on
/// the same line (`CallbackBatcher`): postgres-nio fails the queries of a reset connection before
/// the channel closes, and a query written in between would fail too. A query is never written to
/// a closed connection, which postgres-nio 1.33.2 would never answer (`PostgresStore.onConnection`).
///
/// A connection idle for 60 s is closed, as the pool closes its own.
///
/// A `Service`: run it while the fast path may read (it stops after the listeners); a shutdown
/// closes the connections, and reads after it are answered `CancellationError`.
public final class PostgresBatchReader: TokenBatchReader, Service {
    private let lines: [Line]
    /// Reads in flight on each line.
    private let reads: Mutex<[Int]>

    /// `counted`: called with the number of keys of each batch read (`PostgresStore`'s figures).
    /// `idleLimit`: a connection that read nothing for that long is closed, as the pool closes its
    /// idle ones (a connection a firewall dropped silently would cost a read its time limit).
    init(
        configuration: PostgresConnection.Configuration,
        eventLoopGroup: any EventLoopGroup,
        connections: Int,
        named: Bool,
        logger: Logger,
        idleLimit: TimeAmount = .seconds(60),
        counted: @escaping @Sendable (Int) -> Void
    ) {
        let count = max(1, connections)
        var configuration = configuration
        configuration.options.additionalStartupParameters.append(("application_name", Self.applicationName))
        lines = (0..<count).map { index in
            Line(
                eventLoop: eventLoopGroup.next(),
                configuration: configuration,
                firstID: index * 1_000_000,
                named: named,
                logger: logger,
                idleLimit: idleLimit,
                counted: counted
            )
        }
        reads = Mutex([Int](repeating: 0, count: count))
    }

    /// What its connections show in `pg_stat_activity`.
    public static let applicationName = "tokend-fast-path"

    public func readTokens(
        _ hashes: [TokenHash],
        timeLimit: Duration?,
        completion: @escaping @Sendable (Result<[TokenHash: TokenRecord], any Error>) -> Void
    ) {
        // The line with the fewest reads, on the caller's event loop among equals (no hop).
        let index = reads.withLock { reads -> Int in
            var best = 0
            for candidate in reads.indices {
                let fewer = reads[candidate] < reads[best]
                let asFewHere = reads[candidate] == reads[best] && lines[candidate].eventLoop.inEventLoop
                if fewer || asFewHere { best = candidate }
            }
            reads[best] += 1
            return best
        }
        let line = lines[index]
        let done: @Sendable (Result<[TokenHash: TokenRecord], any Error>) -> Void = { result in
            self.reads.withLock { $0[index] -= 1 }
            completion(result)
        }
        if line.eventLoop.inEventLoop {
            line.read(hashes, timeLimit: timeLimit, completion: done)
        } else {
            line.eventLoop.execute { line.read(hashes, timeLimit: timeLimit, completion: done) }
        }
    }

    /// Waits for a shutdown (or cancellation), then closes the connections.
    public func run() async throws {
        try? await gracefulShutdown()
        for line in lines {
            try? await line.eventLoop.flatSubmit { line.shut() }.get()
        }
    }

    /// Whether each line has an open connection now; for tests.
    var openConnections: [Bool] {
        get async throws {
            var open: [Bool] = []
            for line in lines { open.append(try await line.eventLoop.submit { line.isOpen }.get()) }
            return open
        }
    }

    /// How many connections the lines have opened since start, all told; for tests (unlike
    /// `openConnections`, it does not depend on when it is asked).
    var connectionsOpened: Int {
        get async throws {
            var total = 0
            for line in lines { total += try await line.eventLoop.submit { line.openedCount }.get() }
            return total
        }
    }
}

/// One connection of a `PostgresBatchReader` and its reads. Its mutable state is touched only on
/// `eventLoop` (every method but `init` runs there), hence `@unchecked Sendable`.
private final class Line: @unchecked Sendable {
    let eventLoop: any EventLoop
    private let configuration: PostgresConnection.Configuration
    private let named: Bool
    private let logger: Logger
    private let counted: @Sendable (Int) -> Void

    /// An open connection, and its prepared statement when `named`.
    private struct Open {
        var connection: PostgresConnection
        var statement: PreparedQuery?
    }

    private var open: Open?
    private var opening: EventLoopFuture<Open>?
    /// The connection of `opening` while its statement is prepared, to close if it is given up.
    private var preparing: PostgresConnection?
    private var openingTimer: Scheduled<Void>?
    /// Moves on whenever the connection is given up, so that one still opening then is closed
    /// when it opens instead of being used.
    private var generation = 0
    private var nextID: Int
    private var shutDown = false
    /// Reads under way, and when the last one began: for `idleCheck`.
    private var reading = 0
    private var lastRead = NIODeadline.now()
    private let idleLimit: TimeAmount
    /// Closes the connection once it has been idle for `idleLimit`; runs while one is open.
    private var idleCheck: RepeatedTask?

    init(
        eventLoop: any EventLoop,
        configuration: PostgresConnection.Configuration,
        firstID: Int,
        named: Bool,
        logger: Logger,
        idleLimit: TimeAmount,
        counted: @escaping @Sendable (Int) -> Void
    ) {
        self.idleLimit = idleLimit
        self.eventLoop = eventLoop
        self.configuration = configuration
        self.nextID = firstID
        self.named = named
        self.logger = logger
        self.counted = counted
    }

    var isOpen: Bool {
        eventLoop.preconditionInEventLoop()
        return open.map { !$0.connection.isClosed } ?? false
    }

    /// Connections this line has opened (and kept) since start.
    private(set) var openedCount = 0

    func read(
        _ hashes: [TokenHash],
        timeLimit: Duration?,
        completion: @escaping @Sendable (Result<[TokenHash: TokenRecord], any Error>) -> Void
    ) {
        eventLoop.preconditionInEventLoop()
        guard !shutDown else { return completion(.failure(CancellationError())) }
        counted(hashes.count)
        reading += 1
        lastRead = .now()
        let answer = Once(completion)
        /// The generation of the connection the query was written to, once it was.
        let written = NIOLoopBoundBox(Int?.none, eventLoop: eventLoop)
        let timer = timeLimit.map { limit in
            let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18
            return eventLoop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) { [self] in
                // Taken first: closing the connection fails its query at once, and this read is
                // answered the timeout, not that failure.
                let completion = answer.take()
                // A query stuck on its connection: given up, before the answer (see the type).
                if let generation = written.value, generation == self.generation { giveUp() }
                completion?(.failure(StoreTimeout(seconds: seconds)))
            }
        }
        connection().flatMap { [self] open -> EventLoopFuture<[TokenHash: TokenRecord]> in
            // Answered at its time limit while the connection opened: not sent at all.
            guard answer.isPending else { return eventLoop.makeFailedFuture(StoreTimeout(seconds: 0)) }
            written.value = generation
            return query(hashes, on: open)
        }.whenComplete { [self] result in
            reading -= 1
            lastRead = .now()
            timer?.cancel()
            if case .failure = result, let generation = written.value, generation == self.generation { giveUp() }
            answer.settle(result)
        }
    }

    /// The open connection, or the one being opened (and prepared).
    private func connection() -> EventLoopFuture<Open> {
        if let open, !open.connection.isClosed { return eventLoop.makeSucceededFuture(open) }
        if open != nil { giveUp() }
        if let opening { return opening }
        let generation = generation
        nextID += 1
        let opened = PostgresConnection.connect(on: eventLoop, configuration: configuration, id: nextID, logger: logger)
            .flatMap { [self] connection -> EventLoopFuture<Open> in
                guard generation == self.generation, !shutDown else {
                    return connection.close().flatMapThrowing { throw CancellationError() }
                }
                guard named else { return eventLoop.makeSucceededFuture(Open(connection: connection)) }
                preparing = connection
                return connection.prepare(query: PostgresStore.TokensByHash.sql)
                    .map { Open(connection: connection, statement: $0) }
                    .flatMapError { error in connection.close().flatMapThrowing { throw error } }
            }
            .flatMap { [self] open -> EventLoopFuture<Open> in
                // Given up (its time ran out, a shutdown) while it was prepared: closed, not used.
                guard generation == self.generation, !shutDown else {
                    return open.connection.close().flatMapThrowing { throw CancellationError() }
                }
                self.open = open
                self.openedCount += 1
                opening = nil
                preparing = nil
                openingTimer?.cancel()
                let check = TimeAmount.nanoseconds(max(idleLimit.nanoseconds / 4, 1_000_000))
                idleCheck = eventLoop.scheduleRepeatedTask(initialDelay: check, delay: check) { [self] _ in
                    if self.open != nil, reading == 0, NIODeadline.now() - lastRead >= idleLimit { giveUp() }
                }
                return eventLoop.makeSucceededFuture(open)
            }
        opening = opened
        // After the line above: a connect that failed at once runs this at once.
        opened.whenFailure { [self] _ in
            if generation == self.generation {
                opening = nil
                preparing = nil
                openingTimer?.cancel()
            }
        }
        openingTimer = eventLoop.scheduleTask(in: Self.openingLimit) { [self] in
            if generation == self.generation, opening != nil { giveUp() }
        }
        return opened
    }

    /// How long a connection may take to open and prepare its statement before it is given up
    /// (the connect alone is bounded by the configuration's connect timeout, 5 s).
    static let openingLimit = TimeAmount.seconds(10)

    /// The records of `hashes` through `open`'s connection.
    private func query(_ hashes: [TokenHash], on open: Open) -> EventLoopFuture<[TokenHash: TokenRecord]> {
        // A query written to a closed connection is never answered.
        guard !open.connection.isClosed else { return eventLoop.makeFailedFuture(ConnectionClosed()) }
        let records = NIOLoopBoundBox([TokenHash: TokenRecord](minimumCapacity: hashes.count), eventLoop: eventLoop)
        if let statement = open.statement {
            let array = PostgresData(
                array: hashes.map { PostgresData(type: .bytea, value: ByteBuffer(bytes: $0.bytes)) },
                elementType: .bytea
            )
            return statement.execute([array]) { row in
                let record = try PostgresStore.tokenRecord(row)
                records.value[record.hash] = record
            }.map { records.value }
        }
        let bound = hashes.map { ByteBuffer(bytes: $0.bytes) }
        // `unescaped:` is safe: `tokenColumns` is a constant of `PostgresStore`, never input.
        let sql: PostgresQuery = "SELECT \(unescaped: PostgresStore.tokenColumns) FROM tokens WHERE token_hash = ANY(\(bound))"
        return open.connection.query(sql, logger: logger).flatMapThrowing { result in
            for row in result.rows {
                let record = try PostgresStore.tokenRecord(row)
                records.value[record.hash] = record
            }
            return records.value
        }
    }

    /// Gives the connection up, open or opening: closed, and the next read opens another.
    private func giveUp() {
        generation += 1
        opening = nil
        openingTimer?.cancel()
        openingTimer = nil
        idleCheck?.cancel()
        idleCheck = nil
        if let preparing {
            self.preparing = nil
            preparing.close().whenComplete { _ in }
        }
        if let open {
            self.open = nil
            open.connection.close().whenComplete { _ in }
        }
    }

    /// Closes the connection for good; reads from now on are answered `CancellationError`.
    /// The future completes once the connection is closed, and one still opening has ended (it
    /// closes itself on opening, since it was given up).
    func shut() -> EventLoopFuture<Void> {
        shutDown = true
        let connection = open?.connection
        let opening = opening
        giveUp()
        let opened = opening.map { $0.map { _ in () }.recover { _ in () } } ?? eventLoop.makeSucceededVoidFuture()
        guard let connection else { return opened }
        return opened.and(connection.closeFuture).map { _ in () }
    }
}

/// What a read finds when its connection closed before the query was written.
private struct ConnectionClosed: Error {}

/// A completion called once: by the first of a read's outcome and its time limit. Used on one
/// event loop only.
private final class Once: @unchecked Sendable {
    private var completion: (@Sendable (Result<[TokenHash: TokenRecord], any Error>) -> Void)?

    init(_ completion: @escaping @Sendable (Result<[TokenHash: TokenRecord], any Error>) -> Void) {
        self.completion = completion
    }

    func settle(_ result: Result<[TokenHash: TokenRecord], any Error>) {
        take()?(result)
    }

    /// Whether the completion is still to be called.
    var isPending: Bool { completion != nil }

    /// The completion, unless it was taken (or called) already; it is not called after this.
    func take() -> (@Sendable (Result<[TokenHash: TokenRecord], any Error>) -> Void)? {
        defer { completion = nil }
        return completion
    }
}

extension PostgresStore {
    /// A `PostgresBatchReader` on `connections` connections of its own, configured as
    /// `configuration`, counting its batches with this store's (`poolFigures`), and using
    /// unnamed statements when this store does (a transaction pooler).
    public func batchReader(
        configuration: PostgresConnection.Configuration,
        eventLoopGroup: any EventLoopGroup = PostgresClient.defaultEventLoopGroup,
        connections: Int = 2,
        idleLimit: TimeAmount = .seconds(60)
    ) -> PostgresBatchReader {
        PostgresBatchReader(
            configuration: configuration,
            eventLoopGroup: eventLoopGroup,
            connections: connections,
            named: !transactionPooler,
            logger: logger,
            idleLimit: idleLimit,
            counted: countBatch
        )
    }
}
