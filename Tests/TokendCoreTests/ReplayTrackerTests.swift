import Foundation
import Testing

@testable import TokendCore

/// `ReplayTracker`: what a standby's replayed position confirms, and its lag.
@Suite struct ReplayTrackerTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func aReadIsCompleteAsOfTheNewestProbeItHasReplayedPast() {
        let tracker = ReplayTracker()
        #expect(tracker.completeAsOf(replayed: 1_000) == nil, "no probe yet: nothing is confirmed")
        tracker.record(at: t0, position: 100)
        tracker.record(at: t0 + 1, position: 200)
        tracker.record(at: t0 + 2, position: 300)
        #expect(tracker.completeAsOf(replayed: 99) == nil)
        #expect(tracker.completeAsOf(replayed: 100) == t0)
        #expect(tracker.completeAsOf(replayed: 250) == t0 + 1)
        #expect(tracker.completeAsOf(replayed: 300) == t0 + 2)
        #expect(tracker.completeAsOf(replayed: 10_000) == t0 + 2)
    }

    @Test func lagIsTheAgeOfTheOldestProbeNotYetReplayed() {
        let tracker = ReplayTracker()
        #expect(tracker.lag(now: t0) == nil)
        tracker.record(at: t0, position: 100)
        tracker.record(at: t0 + 1, position: 100)  // an idle primary: the same position
        _ = tracker.completeAsOf(replayed: 100)
        #expect(tracker.lag(now: t0 + 5) == 0, "replayed past every probe: no lag, however old")
        tracker.record(at: t0 + 2, position: 200)
        tracker.record(at: t0 + 3, position: 300)
        #expect(tracker.lag(now: t0 + 5) == 3, "behind since the probe at t0+2")
        _ = tracker.completeAsOf(replayed: 250)
        #expect(tracker.lag(now: t0 + 5) == 2)
        _ = tracker.completeAsOf(replayed: 150)  // another standby behind the pooler, further back
        #expect(tracker.lag(now: t0 + 5) == 2, "the lag follows the furthest position reported")
    }

    @Test func probesOutOfOrderAreIgnoredAndHistoryIsBounded() {
        let tracker = ReplayTracker()
        tracker.record(at: t0 + 10, position: 500)
        tracker.record(at: t0 + 5, position: 400)  // older than the newest: dropped
        #expect(tracker.completeAsOf(replayed: 450) == nil)
        for i in 0..<(ReplayTracker.capacity + 10) {
            tracker.record(at: t0 + 20 + Double(i), position: 1_000 + Int64(i))
        }
        // The oldest probes are gone: a standby behind all that remain confirms nothing.
        #expect(tracker.completeAsOf(replayed: 1_005) == nil)
        #expect(tracker.completeAsOf(replayed: 1_000 + Int64(ReplayTracker.capacity) + 9) == t0 + 20 + Double(ReplayTracker.capacity + 9))
    }
}
