import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization
import TokendAPI
import TokendClient
import TokendCore
import TokendGRPC
import TokendPostgres
import UnixSignals

/// A whole `tokend serve`, built in the order production uses: the store backend, the replica over
/// it, the two listeners, and the services around them, in one `ServiceGroup`.
public struct TokendServer: Sendable {
    /// Run it; a graceful shutdown (a signal, or `triggerGracefulShutdown()`) stops it.
    public let group: ServiceGroup
    public let replica: Replica
    /// Where the listeners are bound, once they are (port 0 is resolved then).
    public let listening: ListeningAddresses
    /// The admin API's bearer secret (configured, or generated with the embedded store).
    public let adminToken: String
}

/// Builds the server `tokend serve` runs; tests call it too, to run the whole service in-process.
/// `gracefulShutdownSignals` are trapped by the group (none in tests); `now` is the replica's wall
/// clock (tests that count per minute move it by hand).
public func buildServiceGroup(
    configuration: ServeConfiguration,
    logger: Logger,
    gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint],
    now: @escaping Now = { Date() }
) async throws -> TokendServer {
    let tls = try configuration.tls.map { files in
        do {
            return try TLSCertificateSource(certificatePath: files.certificate, keyPath: files.key)
        } catch {
            throw ConfigurationError("\(error)")
        }
    }
    if let tls { logger.notice("TLS on every listener", metadata: ["certificate": "\(tls.summary)"]) }
    let scheme = tls == nil ? "http" : "https"
    let issuer = IssuerIdentifier(configuration.issuer ?? "\(scheme)://\(configuration.httpAddress)")
    let adminToken: String
    let generatedTokenPath: String?
    if let configured = configuration.adminToken {
        (adminToken, generatedTokenPath) = (configured, nil)
    } else {
        (adminToken, generatedTokenPath) = try DevSecrets.adminToken(dataDir: configuration.store.dataDir)
    }

    let backend = try await openStoreBackend(configuration.store, readURL: configuration.readDatabaseURL, logger: logger)
    if let postgres = backend as? PostgresBackend, postgres.transactionPooler, postgres.standbyClient == nil,
        configuration.revocationUpstream == nil, configuration.cacheEntries > 0, configuration.cacheMemory > 0
    {
        // LISTEN cannot pass a transaction pooler: such a replica must follow the log another way.
        throw ConfigurationError(
            "TOKEND_DATABASE_URL has pooler=transaction, which cannot carry LISTEN: set TOKEND_REVOCATION_UPSTREAM (follow a hub) or TOKEND_READ_DATABASE_URL (poll a standby)"
        )
    }
    let store = TimeLimitedStore(backend.store, seconds: configuration.storeTimeout)
    let standby = backend.standbyReads.map { reads in
        Standby(
            reads: reads,
            pollInterval: .microseconds(Int64(configuration.logPollInterval * 1_000_000)),
            maxStaleness: configuration.maxStaleness,
            timeLimit: configuration.storeTimeout,
            logger: logger
        )
    }
    let upstream = configuration.revocationUpstream.map { url in
        UpstreamFollower(upstream: GRPCRevocationUpstream(stream: RevocationStream(upstream: url)), maxStaleness: configuration.maxStaleness)
    }
    if let upstream { logger.notice("following the revocation stream of \(upstream.upstream.name)") }
    let replica = Replica(
        store: store,
        cacheEntries: configuration.cacheEntries,
        cacheMemory: configuration.cacheMemory,
        maxStaleness: configuration.maxStaleness,
        now: now,
        logger: logger,
        storeCalls: store.calls,
        pool: backend.pool,
        standby: standby,
        upstream: upstream,
        watchBuffer: configuration.watchBuffer
    )
    let metrics = TokendMetrics()
    let tokend = Tokend(
        replica: replica,
        issuer: issuer,
        logger: logger,
        metrics: metrics,
        limits: configuration.guessLimits,
        signingKeyOverlap: configuration.signingKeyOverlap
    )
    let listening = ListeningAddresses()

    func listener(
        _ router: Router<TokendRequestContext>,
        _ address: ListenAddress,
        name: String,
        fastPath: IntrospectionFastPath? = nil,
        bound: @escaping @Sendable (ListenAddress) -> Void
    ) -> Application<RouterResponder<TokendRequestContext>> {
        Application(
            router: router,
            server: .tokend(tls: tls, fastPath: fastPath),
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: nil),
            // The fast path's store reads, stopped only once the listener has stopped.
            services: fastPath.map { [$0.lookupService] } ?? [],
            onServerRunning: { channel in
                let actual = ListenAddress(host: address.host, port: channel.localAddress?.port ?? address.port)
                logger.notice("\(name) listener ready", metadata: ["address": "\(scheme)://\(actual)"])
                bound(actual)
            },
            logger: logger
        )
    }
    let banner: @Sendable () -> Void = {
        guard let generatedTokenPath, let urls = listening.urls else { return }
        FirstRunBanner.print(publicURL: issuer.current, adminURL: urls.admin, adminTokenPath: generatedTokenPath)
    }
    let kubernetes = KubernetesNaming(usernamePrefix: configuration.kubernetesUsernamePrefix, groupsPrefix: configuration.kubernetesGroupsPrefix)
    let publicRouter = buildPublicRouter(tokend, metrics: metrics, logger: logger, kubernetes: kubernetes)
    // Without memory (TOKEND_CACHE_ENTRIES=0) every introspection asks the store: the fast path
    // then reads every token's record itself.
    let fastPath = IntrospectionFastPath(tokend, metrics: metrics, logger: logger, reader: backend.batchReader)
    var publicApp = listener(publicRouter, configuration.httpAddress, name: "public", fastPath: fastPath) { bound in
        // With port 0 the issuer is known only now.
        if configuration.issuer == nil { issuer.set("\(scheme)://\(bound)") }
        if listening.bound(public: "\(scheme)://\(bound)") { banner() }
    }
    let adminApp = listener(
        buildAdminRouter(tokend, adminToken: adminToken, metrics: metrics, logger: logger),
        configuration.adminAddress,
        name: "admin"
    ) { bound in
        if listening.bound(admin: "\(scheme)://\(bound)") { banner() }
    }
    if configuration.migrate {
        publicApp.beforeServerStarts {
            // Cancelled by a shutdown, and bounded, so that an unreachable database ends the process.
            try await cancelWhenGracefulShutdown {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { _ = try await backend.migrate() }
                    group.addTask {
                        try await Task.sleep(for: .seconds(60))
                        throw ConfigurationError("the store did not answer within 60 s: migrations not applied")
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        }
    }

    // Started in this order and stopped in reverse: the store's own services first, so that they
    // outlive everything that uses them.
    var services: [any Service] = [StoreCloser(backend: backend)]
    let feed = replica.feed
    let signingKeys = tokend.signingKeys
    // With an upstream, no LISTEN connection: its stream carries revocations (signing keys are
    // then re-read every minute).
    services += try backend.services(
        wakeUps: upstream != nil
            ? nil : RevocationListener.WakeUps(revocations: { feed?.wakeUp() }, signingKeys: { signingKeys.markStale() }),
        logger: logger
    )
    if let tls {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let interval = configuration.tlsReloadInterval
        services.append(
            TLSReloader(source: tls, signals: hangups, pollInterval: interval > 0 ? .milliseconds(Int(interval * 1000)) : nil, logger: logger)
        )
    }
    if replica.feed != nil { services.append(ReplicaFeed(replica: replica)) }
    services.append(ExpiryCollector(store: store, interval: configuration.gcInterval, logger: logger))
    services.append(publicApp)
    services.append(adminApp)
    if let address = configuration.grpcAddress {
        services.append(
            try GRPCListener(
                tokend: tokend,
                host: address.host,
                port: address.port,
                tls: tls,
                keepalive: .milliseconds(Int64(configuration.grpcKeepalive * 1000)),
                logger: logger
            ) { host, port in
                listening.bound(grpc: "\(scheme)://\(ListenAddress(host: host, port: port))")
            }
        )
    }
    // Last, so that it is the first to hear of a shutdown: the listeners keep serving until it returns.
    services.append(DrainAnnouncer(replica: replica, delay: configuration.shutdownDelay, logger: logger))

    var groupConfiguration = ServiceGroupConfiguration(
        services: services.map { .init(service: $0) },
        gracefulShutdownSignals: gracefulShutdownSignals,
        logger: logger
    )
    groupConfiguration.maximumGracefulShutdownDuration = .milliseconds(Int((configuration.drainPeriod + configuration.shutdownDelay) * 1000))
    return TokendServer(group: ServiceGroup(configuration: groupConfiguration), replica: replica, listening: listening, adminToken: adminToken)
}
