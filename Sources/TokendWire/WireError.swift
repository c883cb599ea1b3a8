/// Why bytes from the wire were refused. The description names the rule that was broken and is
/// fit for a client: it quotes at most 64 characters of the input (a repeated parameter's name).
public struct WireError: Error, Equatable, CustomStringConvertible {
    private enum Reason: Equatable {
        case emptyParameterName
        case repeatedParameter(Substring)
        case malformedPercentEncoding
        case invalidUTF8
        case notBasicScheme
        case malformedBasicCredentials
    }

    private let reason: Reason

    private init(_ reason: Reason) {
        self.reason = reason
    }

    /// An `Authorization` value whose scheme is not `Basic`, or that carries no credentials.
    public static let notBasicScheme = WireError(.notBasicScheme)

    static let emptyParameterName = WireError(.emptyParameterName)
    static let malformedPercentEncoding = WireError(.malformedPercentEncoding)
    static let invalidUTF8 = WireError(.invalidUTF8)
    static let malformedBasicCredentials = WireError(.malformedBasicCredentials)

    static func repeatedParameter(_ name: String) -> WireError {
        WireError(.repeatedParameter(name.prefix(64)))
    }

    public var description: String {
        switch reason {
        case .emptyParameterName: return "malformed form body: empty parameter name"
        case .repeatedParameter(let name): return "parameter \"\(name)\" is included more than once"
        case .malformedPercentEncoding: return "malformed percent-encoding in form body"
        case .invalidUTF8: return "form body is not valid UTF-8"
        case .notBasicScheme: return "not HTTP Basic credentials"
        case .malformedBasicCredentials: return "malformed Basic credentials"
        }
    }
}
