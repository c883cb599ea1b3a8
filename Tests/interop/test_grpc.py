"""tokend's gRPC listener against Python's grpcio, with stubs generated from proto/ at test time.

- tokend.v1.IntrospectionService / TokenService: the Connect semantics, and every status code SPEC
  names for the gRPC listener (UNAVAILABLE from a second tokend whose PostgreSQL does not exist).
- grpc.health.v1.Health with grpcio-health-checking's stubs; reflection with grpcio-reflection's own
  client (v1alpha) and with v1 stubs.
- envoy.service.auth.v3.Authorization/Check with Envoy's own generated definitions (xds-protos).
- Bad input: malformed protobuf, an oversized message, HTTP/1.1 on the gRPC port, a 10 KB header.
"""

from __future__ import annotations

import base64
import os
import socket
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tokend.v1 import tokend_pb2, tokend_pb2_grpc

ADDRESS = os.environ.get("INTEROP_GRPC_ADDRESS", "")
pytestmark = pytest.mark.skipif(not ADDRESS, reason="INTEROP_GRPC_ADDRESS is not set (run through scripts/interop-test)")

TIMEOUT = 30  # a hang guard, not a timing assertion


def basic(client) -> tuple[tuple[str, str], ...]:
    raw = f"{client.client_id}:{client.client_secret}".encode()
    return (("authorization", "Basic " + base64.b64encode(raw).decode()),)


@pytest.fixture(scope="module")
def channel():
    with grpc.insecure_channel(ADDRESS) as ch:
        grpc.channel_ready_future(ch).result(timeout=TIMEOUT)
        yield ch


@pytest.fixture(scope="module")
def introspection(channel):
    return tokend_pb2_grpc.IntrospectionServiceStub(channel)


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


# --- tokend.v1 over gRPC ----------------------------------------------------------------------

def test_introspect_revoke_and_issue_over_grpc(introspection, channel, main_client, issue):
    issued = issue(main_client.client_id, "grpc-alice", "read write")
    answer = introspection.Introspect(tokend_pb2.IntrospectRequest(token=issued.access_token),
                                      metadata=basic(main_client), timeout=TIMEOUT)
    assert answer.active and answer.sub == "grpc-alice" and answer.scope == "read write"
    assert answer.client_id == main_client.client_id and answer.token_type == "Bearer" and answer.exp > time.time()

    introspection.Revoke(tokend_pb2.RevokeRequest(token=issued.access_token), metadata=basic(main_client), timeout=TIMEOUT)
    after = introspection.Introspect(tokend_pb2.IntrospectRequest(token=issued.access_token),
                                     metadata=basic(main_client), timeout=TIMEOUT)
    assert after.HasField("active") and not after.active and after.sub == ""

    tokens = tokend_pb2_grpc.TokenServiceStub(channel)
    minted = tokens.IssueToken(tokend_pb2.IssueTokenRequest(subject="grpc-bob", scope="read", ttl_seconds=600),
                               metadata=basic(main_client), timeout=TIMEOUT)
    assert minted.access_token.startswith("tkd_at_") and minted.token_type == "Bearer" and minted.expires_in == 600
    again = introspection.Introspect(tokend_pb2.IntrospectRequest(token=minted.access_token),
                                     metadata=basic(main_client), timeout=TIMEOUT)
    assert again.active and again.sub == "grpc-bob"


def test_token_over_grpc(channel, introspection, main_client, make_client, issue):
    """TokenService/Token: RFC 6749's token endpoint with the RFC's field names; its errors map as
    everywhere (invalid_scope / invalid_grant -> INVALID_ARGUMENT, unauthorized_client -> PERMISSION_DENIED)."""
    tokens = tokend_pb2_grpc.TokenServiceStub(channel)
    job = make_client("grpc-cc", ["client_credentials"], scope="jobs:run jobs:read")
    job_md = (("authorization", "Basic " + base64.b64encode(f"{job.client_id}:{job.client_secret}".encode()).decode()),)
    granted = tokens.Token(tokend_pb2.TokenRequest(grant_type="client_credentials", scope="jobs:read"), metadata=job_md,
                           timeout=TIMEOUT)
    assert granted.access_token.startswith("tkd_at_") and granted.token_type == "Bearer" and granted.scope == "jobs:read"
    assert granted.refresh_token == "" and granted.expires_in > 0
    seen = introspection.Introspect(tokend_pb2.IntrospectRequest(token=granted.access_token), metadata=basic(main_client),
                                    timeout=TIMEOUT)
    assert seen.active and seen.sub == job.client_id and seen.client_id == job.client_id
    assert code_of(lambda: tokens.Token(tokend_pb2.TokenRequest(grant_type="client_credentials", scope="admin"),
                                        metadata=job_md, timeout=TIMEOUT)) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: tokens.Token(tokend_pb2.TokenRequest(grant_type="client_credentials"),
                                        metadata=basic(main_client), timeout=TIMEOUT)) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: tokens.Token(tokend_pb2.TokenRequest(grant_type="password"), metadata=job_md,
                                        timeout=TIMEOUT)) == grpc.StatusCode.INVALID_ARGUMENT

    # refresh_token: rotated; the spent one presented again is reuse and ends the grant.
    issued = issue(main_client.client_id, "grpc-dave", "read write")
    rotated = tokens.Token(tokend_pb2.TokenRequest(grant_type="refresh_token", refresh_token=issued.refresh_token),
                           metadata=basic(main_client), timeout=TIMEOUT)
    assert rotated.refresh_token.startswith("tkd_rt_") and rotated.refresh_token != issued.refresh_token
    assert code_of(lambda: tokens.Token(tokend_pb2.TokenRequest(grant_type="refresh_token",
                                                                refresh_token=issued.refresh_token),
                                        metadata=basic(main_client), timeout=TIMEOUT)) == grpc.StatusCode.INVALID_ARGUMENT
    after = introspection.Introspect(tokend_pb2.IntrospectRequest(token=rotated.access_token), metadata=basic(main_client),
                                     timeout=TIMEOUT)
    assert after.HasField("active") and not after.active


def test_unknown_and_malformed_tokens_are_inactive(introspection, main_client):
    for token in ("tkd_at_" + "A" * 43, "not-a-token", "x" * 5000):
        answer = introspection.Introspect(tokend_pb2.IntrospectRequest(token=token), metadata=basic(main_client),
                                          timeout=TIMEOUT)
        assert answer.HasField("active") and not answer.active


def test_status_codes(introspection, channel, clients, main_client, issue):
    request = tokend_pb2.IntrospectRequest(token="tkd_at_" + "B" * 43)
    # UNAUTHENTICATED: no credentials, a wrong secret, another scheme, malformed Basic.
    assert code_of(lambda: introspection.Introspect(request, timeout=TIMEOUT)) == grpc.StatusCode.UNAUTHENTICATED
    wrong = type(main_client)(main_client.client_id, "not-the-secret")
    assert code_of(lambda: introspection.Introspect(request, metadata=basic(wrong), timeout=TIMEOUT)) \
        == grpc.StatusCode.UNAUTHENTICATED
    for header in ("Bearer abc", "Basic !!!"):
        assert code_of(lambda: introspection.Introspect(request, metadata=(("authorization", header),), timeout=TIMEOUT)) \
            == grpc.StatusCode.UNAUTHENTICATED
    # PERMISSION_DENIED: a role is missing; revoking another client's token without role revoke.
    assert code_of(lambda: introspection.Introspect(request, metadata=basic(clients["issuer_only"]), timeout=TIMEOUT)) \
        == grpc.StatusCode.PERMISSION_DENIED
    tokens = tokend_pb2_grpc.TokenServiceStub(channel)
    assert code_of(lambda: tokens.IssueToken(tokend_pb2.IssueTokenRequest(subject="x"), metadata=basic(clients["peer"]),
                                             timeout=TIMEOUT)) == grpc.StatusCode.PERMISSION_DENIED
    theirs = issue(main_client.client_id, "grpc-carol")
    assert code_of(lambda: introspection.Revoke(tokend_pb2.RevokeRequest(token=theirs.access_token),
                                                metadata=basic(clients["peer"]), timeout=TIMEOUT)) \
        == grpc.StatusCode.PERMISSION_DENIED
    still = introspection.Introspect(tokend_pb2.IntrospectRequest(token=theirs.access_token), metadata=basic(main_client),
                                     timeout=TIMEOUT)
    assert still.active
    # INVALID_ARGUMENT: no token.
    assert code_of(lambda: introspection.Introspect(tokend_pb2.IntrospectRequest(), metadata=basic(main_client),
                                                    timeout=TIMEOUT)) == grpc.StatusCode.INVALID_ARGUMENT
    # RESOURCE_EXHAUSTED: a message over 64 KiB.
    big = tokend_pb2.IntrospectRequest(token="y" * (70 * 1024))
    assert code_of(lambda: introspection.Introspect(big, metadata=basic(main_client), timeout=TIMEOUT)) \
        == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_malformed_protobuf_is_invalid_argument(channel, main_client):
    raw = channel.unary_unary("/tokend.v1.IntrospectionService/Introspect",
                              request_serializer=lambda b: b, response_deserializer=lambda b: b)
    # A field-1 string whose length runs past the end of the message.
    assert code_of(lambda: raw(b"\x0a\xff\x01abc", metadata=basic(main_client), timeout=TIMEOUT)) \
        == grpc.StatusCode.INVALID_ARGUMENT


def test_a_10kb_header_is_accepted_and_ignored(introspection, main_client):
    # HTTP/2's header list limit is above 10 KB: the metadata is accepted and tokend ignores it (README).
    metadata = basic(main_client) + (("x-padding", "p" * 10_000),)
    request = tokend_pb2.IntrospectRequest(token="tkd_at_" + "C" * 43)
    answer = introspection.Introspect(request, metadata=metadata, timeout=TIMEOUT)
    assert answer.HasField("active") and not answer.active
    answer = introspection.Introspect(request, metadata=basic(main_client), timeout=TIMEOUT)
    assert answer.HasField("active") and not answer.active


def test_http1_on_the_grpc_port_closes_the_connection(introspection, main_client):
    host, port = ADDRESS.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: tokend\r\n\r\n")
        received = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    # The connection ends (HTTP/2 may first send its SETTINGS and a GOAWAY); no HTTP/1.1 answer.
    assert not received.startswith(b"HTTP/1.1 5"), received[:100]
    answer = introspection.Introspect(tokend_pb2.IntrospectRequest(token="tkd_at_" + "D" * 43),
                                      metadata=basic(main_client), timeout=TIMEOUT)
    assert not answer.active


# --- grpc.health.v1 ---------------------------------------------------------------------------

def test_health_check_and_watch(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "tokend.v1.IntrospectionService", "envoy.service.auth.v3.Authorization"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
    assert code_of(lambda: health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=TIMEOUT)) \
        == grpc.StatusCode.NOT_FOUND
    stream = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
    first = next(stream)
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    stream.cancel()
    unknown = health.Watch(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=TIMEOUT)
    assert next(unknown).status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
    unknown.cancel()


# --- server reflection ------------------------------------------------------------------------

SERVED = {
    "tokend.v1.IntrospectionService", "tokend.v1.TokenService", "tokend.v1.RevocationService", "envoy.service.auth.v3.Authorization",
    "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
}


def test_reflection_v1alpha_with_grpcio_reflection_client(channel):
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    database = ProtoReflectionDescriptorDatabase(channel)
    assert set(database.get_services()) == SERVED
    pool = DescriptorPool(database)
    service = pool.FindServiceByName("tokend.v1.IntrospectionService")
    introspect = service.methods_by_name["Introspect"]
    assert introspect.input_type.full_name == "tokend.v1.IntrospectRequest"
    assert [f.name for f in introspect.output_type.fields][:3] == ["active", "scope", "client_id"]
    check = pool.FindServiceByName("envoy.service.auth.v3.Authorization").methods_by_name["Check"]
    assert check.input_type.fields_by_name["attributes"].number == 1
    assert pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse").fields_by_name["status"].number == 1


def test_reflection_v1(channel):
    # grpcio-reflection ships v1alpha's messages only; v1's are the same field for field, so its
    # classes encode v1 requests, sent on v1's path (what grpcurl calls first).
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha import reflection_pb2

    info = channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                 request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="tokend.v1.TokenService"),
        reflection_pb2.ServerReflectionRequest(file_by_filename="grpc/health/v1/health.proto"),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
    ]
    answers = list(info(iter(requests), timeout=TIMEOUT))
    assert len(answers) == 4
    assert {s.name for s in answers[0].list_services_response.service} == SERVED
    file = descriptor_pb2.FileDescriptorProto.FromString(answers[1].file_descriptor_response.file_descriptor_proto[0])
    assert file.name == "tokend/v1/tokend.proto" and "TokenService" in [s.name for s in file.service]
    health = descriptor_pb2.FileDescriptorProto.FromString(answers[2].file_descriptor_response.file_descriptor_proto[0])
    assert health.package == "grpc.health.v1"
    assert answers[3].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


# --- Envoy ext_authz --------------------------------------------------------------------------

def check_request(authorization: str | None, extensions: dict[str, str] | None = None, extra_headers=None):
    from envoy.service.auth.v3 import external_auth_pb2

    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.method = "GET"
    http.path = "/orders"
    http.host = "shop.example"
    if authorization is not None:
        http.headers["authorization"] = authorization
    for name, value in (extra_headers or {}).items():
        http.headers[name] = value
    for key, value in (extensions or {}).items():
        request.attributes.context_extensions[key] = value
    return request


@pytest.fixture(scope="module")
def authz(channel):
    from envoy.service.auth.v3 import external_auth_pb2_grpc

    return external_auth_pb2_grpc.AuthorizationStub(channel)


def headers_of(options) -> dict[str, str]:
    return {o.header.key: o.header.value for o in options}


def test_ext_authz_allows_an_active_token_and_overwrites_forged_headers(authz, clients, main_client, issue):
    gateway = clients["peer"]
    issued = issue(main_client.client_id, "envoy-alice", "read write")
    forged = {"x-tokend-sub": "mallory", "x-tokend-username": "mallory"}
    answer = authz.Check(check_request("Bearer " + issued.access_token, {"scope": "read"}, forged),
                         metadata=basic(gateway), timeout=TIMEOUT)
    assert answer.status.code == 0 and answer.HasField("ok_response")
    headers = headers_of(answer.ok_response.headers)
    assert headers["x-tokend-sub"] == "envoy-alice"
    assert headers["x-tokend-client-id"] == main_client.client_id
    assert headers["x-tokend-scope"] == "read write"
    assert int(headers["x-tokend-exp"]) > time.time()
    # Every header is set with append=false (overwrite), and a forged one tokend does not set is removed.
    assert all(o.HasField("append") and not o.append.value for o in answer.ok_response.headers)
    assert "x-tokend-username" in answer.ok_response.headers_to_remove


def test_ext_authz_denies(authz, clients, main_client, issue):
    gateway = clients["peer"]
    # No token: 401 with a bare Bearer challenge.
    answer = authz.Check(check_request(None), metadata=basic(gateway), timeout=TIMEOUT)
    assert answer.status.code == 16 and answer.denied_response.status.code == 401
    assert headers_of(answer.denied_response.headers)["www-authenticate"] == 'Bearer realm="tokend"'
    # A revoked token: 401 invalid_token.
    issued = issue(main_client.client_id, "envoy-bob", "read")
    subprocess_revoke(issued.access_token)
    answer = authz.Check(check_request("Bearer " + issued.access_token), metadata=basic(gateway), timeout=TIMEOUT)
    assert answer.status.code == 16 and answer.denied_response.status.code == 401
    assert 'error="invalid_token"' in headers_of(answer.denied_response.headers)["www-authenticate"]
    # An empty Bearer: 401 invalid_token.
    answer = authz.Check(check_request("Bearer "), metadata=basic(gateway), timeout=TIMEOUT)
    assert answer.status.code == 16 and 'error="invalid_token"' in headers_of(answer.denied_response.headers)["www-authenticate"]
    # Insufficient scope: code 7, HTTP 403.
    other = issue(main_client.client_id, "envoy-carol", "read")
    answer = authz.Check(check_request("Bearer " + other.access_token, {"scope": "read admin"}), metadata=basic(gateway),
                         timeout=TIMEOUT)
    assert answer.status.code == 7 and answer.denied_response.status.code == 403
    challenge = headers_of(answer.denied_response.headers)["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="read admin"' in challenge
    # An audience the token does not carry: 401 invalid_token.
    answer = authz.Check(check_request("Bearer " + other.access_token, {"audience": "https://elsewhere"}),
                         metadata=basic(gateway), timeout=TIMEOUT)
    assert answer.status.code == 16 and answer.denied_response.status.code == 401


def test_ext_authz_gateway_credentials(authz, clients, main_client, issue):
    issued = issue(main_client.client_id, "envoy-dave")
    request = check_request("Bearer " + issued.access_token)
    assert code_of(lambda: authz.Check(request, timeout=TIMEOUT)) == grpc.StatusCode.UNAUTHENTICATED
    wrong = type(main_client)(clients["peer"].client_id, "wrong")
    assert code_of(lambda: authz.Check(request, metadata=basic(wrong), timeout=TIMEOUT)) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: authz.Check(request, metadata=basic(clients["issuer_only"]), timeout=TIMEOUT)) \
        == grpc.StatusCode.PERMISSION_DENIED


def subprocess_revoke(token: str) -> None:
    import subprocess

    subprocess.run([os.environ["INTEROP_TOKENCTL"], "revoke", "--token", "-"], input=token, check=True,
                   capture_output=True, text=True, timeout=30)


# --- UNAVAILABLE: a tokend whose store cannot answer --------------------------------------------

@pytest.fixture(scope="module")
def storeless(tmp_path_factory):
    """A second tokend whose PostgreSQL does not exist (port 1, migrations off): its listeners come
    up, and every answer that needs the store must be UNAVAILABLE, never a guess."""
    import json
    import subprocess

    directory = tmp_path_factory.mktemp("storeless")
    tokend = os.path.join(os.path.dirname(os.environ["INTEROP_TOKENCTL"]), "tokend")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
    env.update({
        "TOKEND_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none?sslmode=disable", "TOKEND_MIGRATE": "off",
        "TOKEND_ADMIN_TOKEN": "storeless-admin", "TOKEND_STORE_TIMEOUT": "1s", "TOKEND_LOG_FORMAT": "json",
        "TOKEND_HTTP_ADDR": "127.0.0.1:0", "TOKEND_ADMIN_ADDR": "127.0.0.1:0", "TOKEND_GRPC_ADDR": "127.0.0.1:0",
        "TOKEND_DATA_DIR": str(directory),
    })
    log = open(directory / "tokend.log", "w+", encoding="utf-8")
    process = subprocess.Popen([tokend, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        address = None
        deadline = time.monotonic() + 60
        while address is None and time.monotonic() < deadline:
            assert process.poll() is None, open(directory / "tokend.log", encoding="utf-8").read()[-2000:]
            for line in open(directory / "tokend.log", encoding="utf-8"):
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("msg") == "gRPC listener ready":
                    address = entry["address"].split("://", 1)[1]
            time.sleep(0.05)  # polling the log for a condition, with a deadline
        assert address, "the storeless tokend did not report its gRPC listener within 60 s"
        with grpc.insecure_channel(address) as ch:
            grpc.channel_ready_future(ch).result(timeout=TIMEOUT)
            yield ch
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_a_store_that_cannot_answer_is_unavailable(storeless, main_client):
    from envoy.service.auth.v3 import external_auth_pb2_grpc

    credentials = basic(main_client)
    introspection = tokend_pb2_grpc.IntrospectionServiceStub(storeless)
    assert code_of(lambda: introspection.Introspect(tokend_pb2.IntrospectRequest(token="tkd_at_" + "U" * 43),
                                                    metadata=credentials, timeout=TIMEOUT)) == grpc.StatusCode.UNAVAILABLE
    assert code_of(lambda: introspection.Revoke(tokend_pb2.RevokeRequest(token="tkd_at_" + "U" * 43),
                                                metadata=credentials, timeout=TIMEOUT)) == grpc.StatusCode.UNAVAILABLE
    authz = external_auth_pb2_grpc.AuthorizationStub(storeless)
    assert code_of(lambda: authz.Check(check_request("Bearer tkd_at_" + "U" * 43), metadata=credentials, timeout=TIMEOUT)) \
        == grpc.StatusCode.UNAVAILABLE
    health = health_pb2_grpc.HealthStub(storeless)
    assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT).status \
        == health_pb2.HealthCheckResponse.NOT_SERVING
