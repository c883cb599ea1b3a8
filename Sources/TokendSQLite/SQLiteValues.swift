import Foundation
import NIOCore
import SQLiteNIO
import TokendCore

#if canImport(Glibc)
import Glibc
#endif

func json(_ strings: [String]) -> String {
    String(decoding: (try? JSONEncoder().encode(strings)) ?? Data("[]".utf8), as: UTF8.self)
}

func jsonObject(_ object: [String: String]) -> String {
    String(decoding: (try? JSONEncoder().encode(object)) ?? Data("{}".utf8), as: UTF8.self)
}

func blob(_ bytes: [UInt8]) -> SQLiteData { .blob(ByteBuffer(bytes: bytes)) }

func time(_ date: Date) -> SQLiteData { .float(date.timeIntervalSince1970) }

func optional(_ text: String?) -> SQLiteData { text.map { .text($0) } ?? .null }
