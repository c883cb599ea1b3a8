"""tokend's token endpoint (POST /oauth2/token) and signed introspection answers (RFC 9701) against
unmodified third-party clients (run by scripts/interop-test, once per store).

- authlib's requests OAuth2Session, unchanged: `fetch_token(grant_type="client_credentials")` (RFC 6749
  §4.4) with client_secret_basic and client_secret_post, and `refresh_token(...)` (§6) with rotation;
  replaying a spent refresh token is reuse (RFC 9700 §4.14.2): invalid_grant and the whole grant revoked.
- plain `requests` for what authlib cannot put on the wire: duplicate parameters, repeated `resource`
  (RFC 8707), 16 concurrent redemptions of one refresh token, and the table of refusals.
- PyJWT (with cryptography) verifies `Accept: application/token-introspection+jwt` answers (RFC 9701)
  against the JWKS that the metadata's `jwks_uri` names, before and after `tokenctl keys rotate`.

Every client a test needs beyond conftest's shared ones is registered by the test itself with
`tokenctl clients create` (make_client), under a unique id. Refresh tokens are minted the way an
authorization server's are, with `tokenctl tokens issue --refresh` (conftest's `issue`), for the client
that then redeems them.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

import jwt
import pytest
import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from conftest import record_wire, tokenctl_json

HTTP_TIMEOUT = 10
JWT_MEDIA_TYPE = "application/token-introspection+jwt"
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
ALLOWED_SCOPE = "read write"
# Two targets a client_credentials client may ask for (RFC 8707 `resource` is an absolute URI; the
# `audience` parameter takes any string).
AUDIENCES = ("https://api.interop.example", "https://billing.interop.example")
# A revocation through the replica that answers the introspection is at once (read-your-writes); the
# deadline only absorbs a busy machine.
REVOCATION_DEADLINE = 2.0
# How long a rotated signing key may take to sign the answers of the replica that rotated it.
ROTATION_DEADLINE = 5.0
CONCURRENT_REDEMPTIONS = 16


# --- helpers -----------------------------------------------------------------------------------

def token_url(base: str) -> str:
    return f"{base}/oauth2/token"


def introspect_url(base: str) -> str:
    return f"{base}/oauth2/introspect"


def basic(client_id: str, secret: str) -> dict[str, str]:
    """Authorization: Basic per RFC 6749 §2.3.1 (form-urlencode id and secret, then base64)."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def session(client, method: str = "client_secret_basic", **kwargs) -> tuple[OAuth2Session, list[requests.Response]]:
    """An authlib OAuth2Session for `client`, and the list every HTTP answer it receives is appended to
    (a requests response hook: authlib's token methods return the token, not the response)."""
    oauth = OAuth2Session(client.client_id, client.client_secret, token_endpoint_auth_method=method,
                          default_timeout=HTTP_TIMEOUT, **kwargs)
    answers: list[requests.Response] = []
    oauth.hooks["response"].append(lambda resp, *args, **kw: answers.append(resp))
    return oauth, answers


def post_token(base: str, fields: list[tuple[str, str]], client=None, method: str = "client_secret_basic",
               secret: str | None = None) -> requests.Response:
    """POST /oauth2/token with exactly `fields` (order and duplicates kept) and the client's credentials
    (`secret` overrides the client's own), client_secret_basic or client_secret_post; no client: no
    credentials at all."""
    headers: dict[str, str] = {}
    fields = list(fields)
    if client is not None:
        secret = client.client_secret if secret is None else secret
        if method == "client_secret_basic":
            headers.update(basic(client.client_id, secret))
        else:
            fields += [("client_id", client.client_id), ("client_secret", secret)]
    return requests.post(token_url(base), data=fields, headers=headers, timeout=HTTP_TIMEOUT)


def introspect(base: str, caller, token: str, accept: str | None = None) -> requests.Response:
    headers = basic(caller.client_id, caller.client_secret)
    if accept is not None:
        headers["Accept"] = accept
    return requests.post(introspect_url(base), data={"token": token}, headers=headers, timeout=HTTP_TIMEOUT)


def introspect_json(base: str, caller, token: str) -> dict:
    resp = introspect(base, caller, token)
    assert resp.status_code == 200, resp.text
    assert media_type(resp) == "application/json"
    return resp.json()


def media_type(resp: requests.Response) -> str:
    return resp.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def scopes(value: str) -> set[str]:
    return set(value.split())


def audiences_of(data: dict) -> list[str]:
    aud = data.get("aud", [])
    return [aud] if isinstance(aud, str) else list(aud)


def assert_token_answer(resp: requests.Response) -> dict:
    """A successful token response (RFC 6749 §5.1): 200 JSON, not cacheable, a Bearer access token."""
    assert resp.status_code == 200, f"{resp.status_code} {resp.text}"
    assert media_type(resp) == "application/json"
    assert resp.headers.get("Cache-Control") == "no-store"
    assert resp.headers.get("Pragma") == "no-cache"
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["access_token"].startswith("tkd_at_") and len(body["access_token"]) == 50
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0
    return body


def assert_token_error(resp: requests.Response, status: int, error: str) -> None:
    """An error response (RFC 6749 §5.2): the documented status and code, JSON, not cacheable."""
    assert resp.status_code < 500, f"a 5xx for a client's mistake: {resp.status_code} {resp.text}"
    assert resp.status_code == status, f"{resp.status_code} {resp.text}"
    assert media_type(resp) == "application/json"
    assert resp.json()["error"] == error, resp.text
    assert resp.headers.get("Cache-Control") == "no-store"
    if status == 401:
        assert resp.headers.get("WWW-Authenticate") == 'Basic realm="tokend"'


def poll_inactive(base: str, caller, tokens: dict[str, str], deadline: float = REVOCATION_DEADLINE) -> float:
    """Introspects every token (name -> token) until all answer exactly {"active": false}; fails, naming
    the ones still active, after `deadline` seconds. Returns how long it took."""
    start = time.monotonic()
    while True:
        active = [name for name, token in tokens.items() if introspect_json(base, caller, token) != {"active": False}]
        elapsed = time.monotonic() - start
        if not active:
            return elapsed
        assert elapsed < deadline, f"still active {elapsed:.2f}s after the grant was revoked: {', '.join(active)}"
        time.sleep(0.02)  # polling a condition, with a deadline


@pytest.fixture(scope="module")
def metadata(public_url) -> dict:
    resp = requests.get(f"{public_url}/.well-known/oauth-authorization-server", timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def cc_client(make_client):
    """A client that obtains tokens for itself: role client_credentials, allowed scopes `read write`,
    audiences AUDIENCES."""
    return make_client("cc", ["client_credentials"], AUDIENCES, ALLOWED_SCOPE)


# --- tokenctl: roles, audiences and scopes of a client ------------------------------------------

def test_tokenctl_create_prints_roles_audiences_and_scopes(make_client):
    client = make_client("cc-shape", ["client_credentials", "introspect"], AUDIENCES, "read write admin")
    created = client.created
    assert created["client_id"] == client.client_id
    assert isinstance(created["client_secret"], str) and created["client_secret"]
    assert sorted(created["roles"]) == ["client_credentials", "introspect"]
    assert sorted(created["audiences"]) == sorted(AUDIENCES)
    assert isinstance(created["scopes"], list)
    assert sorted(created["scopes"]) == ["admin", "read", "write"]


# --- authlib: client_credentials (RFC 6749 §4.4) -------------------------------------------------

@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_client_credentials(public_url, main_client, make_client, method):
    client = make_client("cc-authlib", ["client_credentials"], scope=ALLOWED_SCOPE)
    oauth, answers = session(client, method)

    # No scope asked for: every allowed scope.
    token = oauth.fetch_token(token_url(public_url), grant_type="client_credentials")
    resp = answers[-1]
    record_wire(f"authlib fetch_token client_credentials ({method})", dict(resp.request.headers))
    body = assert_token_answer(resp)
    assert "refresh_token" not in body, "client_credentials must not issue a refresh token (RFC 6749 §4.4.3)"
    assert scopes(body["scope"]) == scopes(ALLOWED_SCOPE)
    assert token["access_token"] == body["access_token"]
    assert "grant_type=client_credentials" in resp.request.body
    if method == "client_secret_basic":
        assert resp.request.headers["Authorization"].startswith("Basic ")
    else:
        assert "Authorization" not in resp.request.headers
        assert "client_secret=" in resp.request.body

    data = introspect_json(public_url, main_client, body["access_token"])
    assert data["active"] is True
    assert data["sub"] == client.client_id
    assert data["client_id"] == client.client_id
    assert scopes(data["scope"]) == scopes(ALLOWED_SCOPE)
    assert data["token_type"] == "Bearer"
    assert abs((data["exp"] - data["iat"]) - body["expires_in"]) <= 1
    assert data["iat"] <= int(time.time()) + 5 < data["exp"]

    # A narrower scope.
    narrow = oauth.fetch_token(token_url(public_url), grant_type="client_credentials", scope="read")
    body = assert_token_answer(answers[-1])
    assert body["scope"] == "read" and "refresh_token" not in body
    data = introspect_json(public_url, main_client, narrow["access_token"])
    assert data["active"] is True and data["scope"] == "read" and data["sub"] == client.client_id

    # A scope outside the allowed set.
    with pytest.raises(OAuthError) as err:
        oauth.fetch_token(token_url(public_url), grant_type="client_credentials", scope="read admin")
    assert err.value.error == "invalid_scope"
    assert_token_error(answers[-1], 400, "invalid_scope")


def test_client_credentials_audience_and_resource_narrow_the_token(public_url, main_client, make_client, cc_client):
    """RFC 8707: the token is for the targets asked for, so a resource server restricted to another
    audience sees it as inactive."""
    rs0 = make_client("rs-aud0", ["introspect"], [AUDIENCES[0]])

    body = assert_token_answer(
        post_token(public_url, [("grant_type", "client_credentials"), ("audience", AUDIENCES[0])], cc_client))
    data = introspect_json(public_url, main_client, body["access_token"])
    assert data["active"] is True and data["sub"] == cc_client.client_id
    assert audiences_of(data) == [AUDIENCES[0]]
    assert introspect_json(public_url, rs0, body["access_token"])["active"] is True

    fields = [("grant_type", "client_credentials"), ("resource", AUDIENCES[1])]
    body = assert_token_answer(post_token(public_url, fields, cc_client, "client_secret_post"))
    data = introspect_json(public_url, main_client, body["access_token"])
    assert audiences_of(data) == [AUDIENCES[1]]
    assert introspect_json(public_url, rs0, body["access_token"]) == {"active": False}

    # `resource` may repeat (RFC 8707 §2).
    body = assert_token_answer(post_token(
        public_url, [("grant_type", "client_credentials"), ("resource", AUDIENCES[0]), ("resource", AUDIENCES[1])],
        cc_client))
    data = introspect_json(public_url, main_client, body["access_token"])
    assert sorted(audiences_of(data)) == sorted(AUDIENCES)
    assert introspect_json(public_url, rs0, body["access_token"])["active"] is True


# --- authlib: refresh_token (RFC 6749 §6), rotation and reuse ------------------------------------

def test_authlib_refresh_rotates_and_replay_revokes_the_grant(public_url, clients, issue):
    # The refresh grant needs no role: `peer` has only `introspect`.
    owner, rs = clients["peer"], clients["main"]
    first = issue(owner.client_id, "rita")
    oauth, answers = session(owner, token={"access_token": first.access_token, "refresh_token": first.refresh_token,
                                           "token_type": "Bearer", "expires_in": 3600})

    second = oauth.refresh_token(token_url(public_url))
    record_wire("authlib refresh_token", dict(answers[-1].request.headers))
    body = assert_token_answer(answers[-1])
    assert body["refresh_token"].startswith("tkd_rt_") and len(body["refresh_token"]) == 50
    assert f"refresh_token={first.refresh_token}" in answers[-1].request.body
    third = oauth.refresh_token(token_url(public_url), scope="read")
    body = assert_token_answer(answers[-1])
    assert body.get("scope", "read") == "read"  # RFC 6749 §5.1: may be left out when it is the one asked for

    refresh_tokens = [first.refresh_token, second["refresh_token"], third["refresh_token"]]
    access_tokens = [first.access_token, second["access_token"], third["access_token"]]
    assert len(set(refresh_tokens)) == 3, "every answer carries a new refresh token"
    assert len(set(access_tokens)) == 3

    data = introspect_json(public_url, rs, third["access_token"])
    assert data["active"] is True and data["sub"] == "rita" and data["client_id"] == owner.client_id
    assert data["scope"] == "read"
    assert introspect_json(public_url, rs, third["refresh_token"])["active"] is True
    # A spent refresh token is no longer active, and introspecting it is not reuse.
    assert introspect_json(public_url, rs, first.refresh_token) == {"active": False}
    assert introspect_json(public_url, rs, third["access_token"])["active"] is True

    # Replaying the first refresh token: reuse.
    with pytest.raises(OAuthError) as err:
        oauth.refresh_token(token_url(public_url), refresh_token=first.refresh_token)
    assert err.value.error == "invalid_grant"
    assert_token_error(answers[-1], 400, "invalid_grant")
    latency = poll_inactive(public_url, rs, {
        "latest access token": third["access_token"], "latest refresh token": third["refresh_token"],
        "second access token": second["access_token"], "first access token": first.access_token,
    })
    print(f"grant revoked on reuse: every token of the grant inactive after {latency * 1000:.0f} ms")


def test_narrowed_refresh_keeps_the_refresh_tokens_scope(public_url, clients, issue):
    """RFC 6749 §6: `scope` narrows the access token; the new refresh token's scope stays that of the
    one presented, so a later refresh may ask for the whole original scope again, never more."""
    owner, rs = clients["peer"], clients["main"]
    first = issue(owner.client_id, "sid")
    oauth, answers = session(owner)

    narrowed = oauth.refresh_token(token_url(public_url), refresh_token=first.refresh_token, scope="read")
    assert introspect_json(public_url, rs, narrowed["access_token"])["scope"] == "read"
    assert scopes(introspect_json(public_url, rs, narrowed["refresh_token"])["scope"]) == {"read", "write"}

    widened = oauth.refresh_token(token_url(public_url), refresh_token=narrowed["refresh_token"], scope="read write")
    assert scopes(introspect_json(public_url, rs, widened["access_token"])["scope"]) == {"read", "write"}

    with pytest.raises(OAuthError) as err:
        oauth.refresh_token(token_url(public_url), refresh_token=widened["refresh_token"], scope="read write admin")
    assert err.value.error == "invalid_scope"
    assert_token_error(answers[-1], 400, "invalid_scope")


def test_concurrent_redemptions_of_one_refresh_token(public_url, clients, issue):
    owner, rs = clients["peer"], clients["main"]
    issued = issue(owner.client_id, "tess")
    barrier = threading.Barrier(CONCURRENT_REDEMPTIONS)

    def redeem(_: int) -> tuple[int, dict]:
        barrier.wait(timeout=30)
        resp = post_token(public_url, [("grant_type", "refresh_token"), ("refresh_token", issued.refresh_token)], owner)
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, {"body": resp.text[:200]}

    with ThreadPoolExecutor(max_workers=CONCURRENT_REDEMPTIONS) as pool:
        results = list(pool.map(redeem, range(CONCURRENT_REDEMPTIONS), timeout=60))

    statuses = sorted(status for status, _ in results)
    assert all(status < 500 for status in statuses), statuses
    winners = [body for status, body in results if status == 200]
    losers = [body for status, body in results if status != 200]
    assert len(winners) == 1, f"exactly one redemption may win: {statuses}"
    assert [status for status, _ in results].count(400) == CONCURRENT_REDEMPTIONS - 1, statuses
    assert all(body.get("error") == "invalid_grant" for body in losers), losers
    winner = winners[0]
    assert winner["refresh_token"] != issued.refresh_token

    # The losers presented a spent refresh token: reuse, so the winner's grant is revoked too.
    poll_inactive(public_url, rs, {"winner's access token": winner["access_token"],
                                   "winner's refresh token": winner["refresh_token"],
                                   "original access token": issued.access_token})


# --- the table of refusals -----------------------------------------------------------------------

# id -> (status, error). The requests are built in test_token_endpoint_refuses below.
REFUSALS = {
    "unknown grant_type": (400, "unsupported_grant_type"),
    "password grant": (400, "unsupported_grant_type"),
    "missing grant_type": (400, "invalid_request"),
    "duplicate grant_type": (400, "invalid_request"),
    "duplicate scope": (400, "invalid_request"),
    "missing refresh_token": (400, "invalid_request"),
    "refresh token of another client": (400, "invalid_grant"),
    "access token as refresh_token": (400, "invalid_grant"),
    "never-issued refresh token": (400, "invalid_grant"),
    "refresh with a wider scope": (400, "invalid_scope"),
    "scope outside the allowed set": (400, "invalid_scope"),
    "audience outside the allowed set": (400, "invalid_target"),
    "resource outside the allowed set": (400, "invalid_target"),
    "one resource inside, one outside": (400, "invalid_target"),
    "client without role client_credentials": (400, "unauthorized_client"),
    "wrong secret (client_secret_basic)": (401, "invalid_client"),
    "wrong secret (client_secret_post)": (401, "invalid_client"),
    "no client authentication": (401, "invalid_client"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_token_endpoint_refuses(public_url, clients, issue, cc_client, case):
    status, error = REFUSALS[case]
    main, peer = clients["main"], clients["peer"]
    cc = [("grant_type", "client_credentials")]
    client, method, secret, followup = cc_client, "client_secret_basic", None, None
    if case == "unknown grant_type":
        fields = [("grant_type", "urn:example:params:oauth:grant-type:no-such-grant")]
    elif case == "password grant":
        fields = [("grant_type", "password"), ("username", "u"), ("password", "p")]
    elif case == "missing grant_type":
        fields = [("scope", "read")]
    elif case == "duplicate grant_type":
        fields = cc + cc
    elif case == "duplicate scope":
        fields = cc + [("scope", "read"), ("scope", "write")]
    elif case == "missing refresh_token":
        client, fields = main, [("grant_type", "refresh_token")]
    elif case == "refresh token of another client":
        issued = issue(main.client_id, "uma")
        client, fields = peer, [("grant_type", "refresh_token"), ("refresh_token", issued.refresh_token)]
    elif case == "access token as refresh_token":
        issued = issue(main.client_id, "vic")
        client, fields = main, [("grant_type", "refresh_token"), ("refresh_token", issued.access_token)]

        def grant_untouched():  # not a spent refresh token, so not reuse: the grant stays
            assert introspect_json(public_url, main, issued.access_token)["active"] is True
            assert introspect_json(public_url, main, issued.refresh_token)["active"] is True

        followup = grant_untouched
    elif case == "never-issued refresh token":
        client, fields = main, [("grant_type", "refresh_token"), ("refresh_token", "tkd_rt_" + "Q" * 43)]
    elif case == "refresh with a wider scope":
        issued = issue(main.client_id, "wes", scope="read")
        client, fields = main, [("grant_type", "refresh_token"), ("refresh_token", issued.refresh_token),
                                ("scope", "read write")]
    elif case == "scope outside the allowed set":
        fields = cc + [("scope", "read admin")]
    elif case == "audience outside the allowed set":
        fields = cc + [("audience", "https://elsewhere.interop.example")]
    elif case == "resource outside the allowed set":
        fields = cc + [("resource", "https://elsewhere.interop.example")]
    elif case == "one resource inside, one outside":
        fields = cc + [("resource", AUDIENCES[0]), ("resource", "https://elsewhere.interop.example")]
    elif case == "client without role client_credentials":
        client, fields = peer, cc
    elif case == "wrong secret (client_secret_basic)":
        fields, secret = cc, cc_client.client_secret[:-2] + "xx"
    elif case == "wrong secret (client_secret_post)":
        fields, secret, method = cc, cc_client.client_secret[:-2] + "xx", "client_secret_post"
    elif case == "no client authentication":
        client, fields = None, cc
    else:  # pragma: no cover - a case in REFUSALS without a request
        pytest.fail(f"no request for {case!r}")

    resp = post_token(public_url, fields, client, method, secret)
    assert_token_error(resp, status, error)
    assert "access_token" not in resp.json()
    if followup is not None:
        followup()


# --- RFC 9701: signed introspection answers ------------------------------------------------------

def fetch_jwks(metadata: dict) -> dict:
    """The JWKS at the metadata's jwks_uri, checked to be public EC P-256 signing keys only."""
    resp = requests.get(metadata["jwks_uri"], timeout=HTTP_TIMEOUT)
    assert resp.status_code == 200, resp.text
    assert media_type(resp) in ("application/json", "application/jwk-set+json")
    jwks = resp.json()
    assert jwks["keys"], "an empty JWKS"
    for key in jwks["keys"]:
        assert {k: key.get(k) for k in ("kty", "crv", "use", "alg")} == {
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256"}, key
        assert key["x"] and key["y"] and key["kid"], key
        assert "d" not in key, "the JWKS publishes a private key"
    kids = [key["kid"] for key in jwks["keys"]]
    assert len(kids) == len(set(kids)), f"duplicate kids: {kids}"
    assert len(jwt.PyJWKSet.from_dict(jwks).keys) == len(jwks["keys"]), "a key PyJWT cannot use"
    return jwks


def verify_signed_answer(resp: requests.Response, jwks: dict, issuer: str, caller_id: str) -> tuple[dict, dict]:
    """Checks an RFC 9701 answer and verifies it against `jwks`; returns (JOSE header, payload)."""
    assert resp.status_code == 200, resp.text
    assert media_type(resp) == JWT_MEDIA_TYPE
    assert resp.headers.get("Cache-Control") == "no-store"
    compact = resp.content.decode("ascii")
    assert COMPACT_JWS.fullmatch(compact), "the body is not exactly one compact JWS"
    header = jwt.get_unverified_header(compact)
    assert header["alg"] == "ES256"
    assert header["typ"] == "token-introspection+jwt"
    key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]  # KeyError: the kid is not in the JWKS
    payload = jwt.decode(compact, key=key, algorithms=["ES256"], audience=caller_id, issuer=issuer, leeway=5,
                         options={"require": ["iss", "aud", "iat"], "strict_aud": True})
    assert payload["aud"] == caller_id
    assert abs(payload["iat"] - time.time()) < 60
    assert isinstance(payload["token_introspection"], dict)
    # RFC 9701 §5: not an access token in disguise, so no top-level sub or exp.
    assert "sub" not in payload and "exp" not in payload, payload
    return header, payload


def test_rfc9701_signed_answer_verifies_and_matches_the_json_answer(public_url, clients, issue, metadata):
    # The caller is not the token's client, so `aud` (the caller) and token_introspection.client_id differ.
    caller, owner = clients["peer"], clients["main"]
    issued = issue(owner.client_id, "xena")
    jwks = fetch_jwks(metadata)
    for label, token in (("active", issued.access_token), ("inactive", "tkd_at_" + "Z" * 43)):
        resp = introspect(public_url, caller, token, accept=JWT_MEDIA_TYPE)
        record_wire(f"requests introspect {JWT_MEDIA_TYPE}", dict(resp.request.headers))
        _, payload = verify_signed_answer(resp, jwks, metadata["issuer"], caller.client_id)
        plain = introspect_json(public_url, caller, token)
        assert payload["token_introspection"] == plain, label
        if label == "active":
            assert plain["active"] is True and plain["client_id"] == owner.client_id and plain["sub"] == "xena"
        else:
            assert plain == {"active": False}


def test_rfc9701_key_rotation_keeps_old_answers_verifiable(public_url, clients, issue, metadata):
    caller = clients["peer"]
    issued = issue(clients["main"].client_id, "yuri")
    before = introspect(public_url, caller, issued.access_token, accept=JWT_MEDIA_TYPE)
    old_header, _ = verify_signed_answer(before, fetch_jwks(metadata), metadata["issuer"], caller.client_id)
    old_kid = old_header["kid"]
    keys = tokenctl_json("keys", "list")
    assert [k["kid"] for k in keys if k["current"] is True] == [old_kid], keys

    rotated = tokenctl_json("keys", "rotate")
    new_kid = rotated["kid"]
    assert new_kid != old_kid

    # The answer signed before the rotation still verifies against the JWKS fetched after it.
    jwks = fetch_jwks(metadata)
    assert {old_kid, new_kid} <= {key["kid"] for key in jwks["keys"]}
    verify_signed_answer(before, jwks, metadata["issuer"], caller.client_id)

    # New answers carry the new kid, and verify against a JWKS fetched after them.
    start = time.monotonic()
    while True:
        after = introspect(public_url, caller, issued.access_token, accept=JWT_MEDIA_TYPE)
        header, payload = verify_signed_answer(after, fetch_jwks(metadata), metadata["issuer"], caller.client_id)
        if header["kid"] == new_kid:
            break
        assert header["kid"] == old_kid, header
        assert time.monotonic() - start < ROTATION_DEADLINE, f"still signed with the old key {ROTATION_DEADLINE}s on"
        time.sleep(0.05)  # polling a condition, with a deadline
    assert payload["token_introspection"]["active"] is True

    keys = {k["kid"]: k for k in tokenctl_json("keys", "list")}
    assert keys[new_kid]["current"] is True
    assert keys[old_kid]["current"] is False
    assert sum(1 for k in keys.values() if k["current"] is True) == 1, keys


# Accept header -> the answer's media type (RFC 9110 §12.5.1: highest q wins; JSON at equal q).
ACCEPT_CASES = {
    JWT_MEDIA_TYPE: JWT_MEDIA_TYPE,
    f"application/json;q=0.5, {JWT_MEDIA_TYPE}": JWT_MEDIA_TYPE,
    f"application/json; q=0.5, {JWT_MEDIA_TYPE}; q=1.0": JWT_MEDIA_TYPE,
    f"{JWT_MEDIA_TYPE};q=0.5, application/json": "application/json",
    f"{JWT_MEDIA_TYPE}, application/json": "application/json",
    f"application/json, {JWT_MEDIA_TYPE}": "application/json",
    f"{JWT_MEDIA_TYPE};q=0.8, application/json;q=0.8": "application/json",
    "application/json": "application/json",
}


@pytest.mark.parametrize("accept", list(ACCEPT_CASES))
def test_introspection_accept_negotiation(public_url, clients, issue, metadata, accept):
    caller = clients["peer"]
    issued = issue(clients["main"].client_id, "zoe")
    resp = introspect(public_url, caller, issued.access_token, accept=accept)
    assert resp.status_code == 200, resp.text
    assert media_type(resp) == ACCEPT_CASES[accept]
    if ACCEPT_CASES[accept] == JWT_MEDIA_TYPE:
        _, payload = verify_signed_answer(resp, fetch_jwks(metadata), metadata["issuer"], caller.client_id)
        data = payload["token_introspection"]
    else:
        data = resp.json()
    assert data["active"] is True and data["sub"] == "zoe"


# --- RFC 8414 metadata ---------------------------------------------------------------------------

def test_metadata_names_token_endpoint_grants_and_signing_keys(public_url, metadata):
    assert metadata["issuer"] == public_url
    assert metadata["token_endpoint"] == token_url(public_url)
    assert {"client_credentials", "refresh_token"} <= set(metadata["grant_types_supported"])
    # No authorization endpoint, so none of the grants that need one.
    assert not {"authorization_code", "implicit", "password"} & set(metadata["grant_types_supported"])
    assert {"client_secret_basic", "client_secret_post"} <= set(metadata["token_endpoint_auth_methods_supported"])
    assert metadata["introspection_signing_alg_values_supported"] == ["ES256"]
    assert urlsplit(metadata["jwks_uri"]).path == "/.well-known/jwks.json"
    assert metadata["jwks_uri"] == f"{public_url}/.well-known/jwks.json"
    fetch_jwks(metadata)


# --- tokenctl clients update ---------------------------------------------------------------------

def test_tokenctl_update_replaces_only_the_given_attributes(public_url, make_client):
    client = make_client("cc-update", ["client_credentials"], [AUDIENCES[0]], "read")

    def fetch(*extra: tuple[str, str]) -> requests.Response:
        return post_token(public_url, [("grant_type", "client_credentials"), *extra], client)

    assert_token_answer(fetch(("scope", "read")))
    assert_token_error(fetch(("scope", "deploy")), 400, "invalid_scope")

    # Only the scopes change: the role and the audience stay.
    updated = tokenctl_json("clients", "update", client.client_id, "--scope", "deploy")
    assert isinstance(updated, dict)
    assert "client_secret" not in updated, "update must not print (or change) the secret"
    body = assert_token_answer(fetch(("scope", "deploy"), ("audience", AUDIENCES[0])))
    assert body["scope"] == "deploy"
    assert_token_error(fetch(("scope", "read")), 400, "invalid_scope")

    # Only the roles change: the scopes and the audience stay.
    tokenctl_json("clients", "update", client.client_id, "--role", "introspect")
    assert_token_error(fetch(("scope", "deploy")), 400, "unauthorized_client")
    tokenctl_json("clients", "update", client.client_id, "--role", "client_credentials")
    assert_token_answer(fetch(("scope", "deploy"), ("audience", AUDIENCES[0])))
    assert_token_error(fetch(("audience", AUDIENCES[1])), 400, "invalid_target")
