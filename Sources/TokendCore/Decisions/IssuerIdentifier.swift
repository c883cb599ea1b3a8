import Synchronization

/// The `iss` value: configured, or learned once the public listener knows its port.
public final class IssuerIdentifier: Sendable {
    private let value: Mutex<String>

    public init(_ value: String) {
        self.value = Mutex(value)
    }

    public var current: String { value.withLock { $0 } }

    public func set(_ newValue: String) {
        value.withLock { $0 = newValue }
    }
}
