// Hand-written (scripts/generate-proto writes only Generated/): the Connect JSON codec's options,
// one definition for the server's codec (TokendAPI's `ConnectCodec`) and the fuzzer
// (`Tests/Fuzz/connect_json`), which builds this file with the messages.
import SwiftProtobuf

/// How the Connect `json` codec (protojson) reads requests and writes answers.
public enum ConnectJSONOptions {
    /// Answers: the RFC names (`client_id`), as in proto/; protojson parsers accept either form.
    public static let encoding: JSONEncodingOptions = {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        return options
    }()

    /// Requests: members tokend does not know (a newer client's fields) are skipped.
    public static let decoding: JSONDecodingOptions = {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        return options
    }()
}
