import Foundation

/// The current time. Injected everywhere so that tests can move a manual clock instead of sleeping.
public typealias Now = @Sendable () -> Date
