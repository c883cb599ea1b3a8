import Foundation

/// A setting that does not parse; its description names the setting, never a secret value.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
