#!/usr/bin/env python3
"""Writes the seed corpora of the protobuf fuzz targets (Tests/Fuzz/corpus/{connect_proto,
connect_json,check_request}/): a few valid encodings of each message, by hand (no protobuf library
needed). The first byte of a connect_* seed picks the message (SupportProto.swift's order).

    python3 Tests/Fuzz/proto_seeds.py
"""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def varint(n):
    n &= (1 << 64) - 1  # negative int64s: ten bytes, two's complement
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(field, wire):
    return varint(field << 3 | wire)


def v(field, n):
    return tag(field, 0) + varint(n)


def s(field, data):
    if isinstance(data, str):
        data = data.encode()
    return tag(field, 2) + varint(len(data)) + data


def entry(field, key, value):  # a map<string, string> entry
    return s(field, s(1, key) + s(2, value))


TOKEN = "tkd_Vx3f9Qm2kLp8ZrT4yWn6bCd1eGh5jK7s"
HASH = "mZ3kQ9vX2pL8rT4yWn6bCd1eGh5jK7sA0uF2iO4qE6w"

# (selector, name, binary, JSON)
CONNECT = [
    (0, "introspect", s(1, TOKEN) + s(2, "access_token"), {"token": TOKEN, "token_type_hint": "access_token"}),
    (0, "introspect-camel", s(1, TOKEN), {"token": TOKEN, "tokenTypeHint": "refresh_token"}),
    (1, "revoke", s(1, TOKEN) + s(2, "refresh_token"), {"token": TOKEN, "token_type_hint": "refresh_token"}),
    (2, "issue", s(1, "as") + s(2, "alice") + s(3, "Alice") + s(4, "read write") + s(5, "api") + s(5, "billing")
     + v(6, 900) + v(7, 1) + v(8, 86400) + s(9, s(1, "jkt-thumbprint")) + entry(10, "tenant", "acme")
     + entry(10, "team", "red") + s(11, "grant-1") + v(12, 1700000000),
     {"client_id": "as", "subject": "alice", "username": "Alice", "scope": "read write", "audiences": ["api", "billing"],
      "ttl_seconds": "900", "refresh": True, "refresh_ttl_seconds": 86400, "cnf": {"jkt": "jkt-thumbprint"},
      "extra": {"tenant": "acme", "team": "red"}, "grant_id": "grant-1", "nbf": "1700000000"}),
    (3, "token-client-credentials", s(1, "client_credentials") + s(2, "read") + s(4, "api") + s(5, "https://api.example"),
     {"grant_type": "client_credentials", "scope": "read", "audience": ["api"], "resource": ["https://api.example"]}),
    (3, "token-refresh", s(1, "refresh_token") + s(3, TOKEN), {"grantType": "refresh_token", "refreshToken": TOKEN}),
    (4, "watch", v(1, 12345), {"after_seq": "12345"}),
    (4, "watch-negative", v(1, -1), {"afterSeq": -1}),
    (5, "create-client", s(1, "rs") + s(2, "introspect") + s(2, "revoke") + s(3, "api") + s(4, "read"),
     {"client_id": "rs", "roles": ["introspect", "revoke"], "audiences": ["api"], "scopes": ["read"]}),
    (6, "update-client", s(1, "rs") + s(2, s(1, "introspect")) + s(3, b"") + s(4, s(1, "read") + s(1, "write")),
     {"client_id": "rs", "roles": {"values": ["introspect"]}, "audiences": {}, "scopes": {"values": ["read", "write"]}}),
    (7, "list-signing-keys", b"", {}),
    (8, "rotate-signing-key", b"", {}),
    (9, "list-clients", b"", {}),
    (10, "delete-client", s(1, "rs"), {"client_id": "rs"}),
    (11, "rotate-client-secret", s(1, "rs"), {"clientId": "rs"}),
    (12, "admin-revoke-token", s(1, TOKEN) + s(6, "leaked"), {"token": TOKEN, "reason": "leaked"}),
    (12, "admin-revoke-subject", s(3, "alice") + s(6, "offboarded"), {"subject": "alice", "reason": "offboarded"}),
    (12, "admin-revoke-grant", s(5, "grant-1"), {"grant_id": "grant-1"}),
    (13, "list-revocations", v(1, 40) + v(2, 1000), {"since": "40", "limit": 1000}),
    (14, "list-audit-events", v(1, 1700000000) + s(2, "admin") + v(3, 7) + v(4, 50),
     {"since": "1700000000", "actor": "admin", "after_seq": "7", "page_size": 50}),
    (15, "status", b"", {}),
    # An unknown field (a newer client's): kept by the proto codec, skipped by the JSON codec.
    (0, "introspect-unknown-field", s(1, TOKEN) + v(99, 1) + s(100, "x"), {"token": TOKEN, "future_field": [1, {"a": None}]}),
]


def http_request(method, path, host, headers=(), header_map=()):
    body = s(2, method)
    for key, value in headers:
        body += entry(3, key, value)
    body += s(4, path) + s(5, host)
    if header_map:
        body += s(13, b"".join(s(1, s(1, k) + (s(2, val) if val else b"") + (s(3, raw) if raw else b""))
                                for k, val, raw in header_map))
    return body


def check_request(http, extensions=(), unknown=b""):
    attributes = s(4, s(2, http))
    for key, value in extensions:
        attributes += entry(10, key, value)
    return s(1, attributes + unknown)


CHECK = [
    ("bearer", check_request(http_request("GET", "/orders", "api.example",
                                          [(":authority", "api.example"), ("authorization", "Bearer " + TOKEN),
                                           ("user-agent", "curl/8"), ("x-request-id", "r-1")]),
                             [("audience", "api"), ("scope", "read write")])),
    ("bearer-lowercase-scheme", check_request(http_request("POST", "/", "h", [("authorization", "bearer   " + TOKEN + "  ")]))),
    ("no-authorization", check_request(http_request("GET", "/", "h", [("accept", "*/*")]))),
    ("basic-scheme", check_request(http_request("GET", "/", "h", [("authorization", "Basic cnM6c2VjcmV0")]))),
    ("empty-bearer", check_request(http_request("GET", "/", "h", [("authorization", "Bearer")]))),
    ("header-map-raw-values", check_request(http_request("GET", "/", "h", header_map=[
        ("Authorization", "", ("BEARER " + TOKEN).encode()), ("x-tokend-sub", "spoofed", b""),
        ("authorization", "Bearer second", b"")]))),
    ("headers-and-header-map", check_request(http_request("GET", "/", "h", [("authorization", "Bearer " + TOKEN)],
                                                          [("authorization", "Bearer other", b"")]))),
    # One name in several spellings (the finding: the value kept depended on a dictionary's order),
    # directly and through two `attributes` fields, whose maps merge.
    ("authorization-in-three-spellings", check_request(http_request("GET", "/", "h", [
        ("Authorization", "Bearer first"), ("AUTHORIZATION", "Bearer second"), ("authorization", "Bearer third")]))),
    ("two-attributes-merged", check_request(http_request("GET", "/", "h", [("authorization", "Bearer " + TOKEN)]))
     + check_request(http_request("GET", "/", "h", [("Authorization", "Bearer other")]))),
    # A combining mark after the space (the finding: read by Character, the scheme ran on).
    ("bearer-space-combining-mark", check_request(http_request("GET", "/", "h", [("authorization", "Bearer \u0301" + TOKEN)]))),
    # Fields Envoy sends that tokend's restated proto leaves out (source, time, metadata): unknown.
    ("envoy-unknown-fields", check_request(http_request("GET", "/", "h", [("authorization", "Bearer " + TOKEN)]),
                                           unknown=s(1, s(1, b"\x0a\x0910.0.0.1")) + s(2, b"\x08\x01") + v(11, 3))),
]


def write(target, name, data):
    os.makedirs(os.path.join(ROOT, target), exist_ok=True)
    with open(os.path.join(ROOT, target, name), "wb") as f:
        f.write(data)


for selector, name, binary, document in CONNECT:
    write("connect_proto", name, bytes([selector]) + binary)
    write("connect_json", name, bytes([selector]) + json.dumps(document, separators=(",", ":")).encode())
for name, data in CHECK:
    write("check_request", name, data)
