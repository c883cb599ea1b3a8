import Foundation
import HTTPTypes
import Hummingbird
import TokendCore

/// `GET /metrics`: the Prometheus text format, with the replica's figures refreshed at each scrape.
struct MetricsController: Sendable {
    let metrics: TokendMetrics
    let replica: Replica

    func register(on router: Router<TokendRequestContext>) {
        router.get("/metrics") { _, _ -> Response in
            metrics.observe(replica, now: Date())
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.exposition()))
            )
        }
    }
}
