// Fuzz target: the Content-Type and Accept-Encoding matchers (header values from the network).
// Properties: no crash; a header that is exactly the expected type (any letter case, with
// parameters after a semicolon) matches; the answers are deterministic.
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMediaType(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let header = String(decoding: UnsafeRawBufferPointer(start: data, count: size), as: UTF8.self)
    let form = MediaType.is(header, "application/x-www-form-urlencoded")
    require(form == MediaType.is(header, "application/x-www-form-urlencoded"), "MediaType.is is not deterministic")
    _ = MediaType.is(header, "application/proto")
    require(AcceptEncoding.admitsGzip(header) == AcceptEncoding.admitsGzip(header), "admitsGzip is not deterministic")
    let parameters = header.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F } ? header : ""
    require(MediaType.is("Application/JSON; " + parameters, "application/json"), "a parameter list broke a match")
    return 0
}
