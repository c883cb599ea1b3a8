"""nginx's auth_request in front of an application, with tokend's /authz deciding (run by
scripts/interop-test, which installs nginx when it is missing).

The nginx configuration is deploy/examples/nginx.conf itself, with its addresses and the gateway's
credentials substituted, included from a small wrapper that keeps nginx's pid, logs and temp files
in a temporary directory. The application is a tiny Python server that answers every request with
the method, path, headers and body length it received.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from gateway_support import (EXAMPLES, REVOCATION_ASSERTED, REVOCATION_DEADLINE, STARTUP_DEADLINE, Application,
                             basic, bearer, free_port, issue, substitute, tokenctl)

EXAMPLE = EXAMPLES / "nginx.conf"


@pytest.fixture(scope="module")
def application():
    app = Application()
    yield app
    app.stop()


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class Nginx:
    """nginx in the foreground on a free port, with the example configuration."""

    def __init__(self, binary: str, tokend: str, application: str, gateway_basic: str):
        self.dir = Path(tempfile.mkdtemp(prefix="tokend-nginx-"))
        self.port = free_port()
        conf = EXAMPLE.read_text()
        conf = substitute(conf, "server tokend.tokend.svc.cluster.local:80;", f"server {tokend};", "nginx.conf")
        conf = substitute(conf, "server app.default.svc.cluster.local:8080;", f"server {application};", "nginx.conf")
        conf = substitute(conf, "listen 8080;", f"listen 127.0.0.1:{self.port};", "nginx.conf")
        conf = substitute(conf, "Basic REPLACE_WITH_BASE64_OF_CLIENT_ID_COLON_SECRET", gateway_basic, "nginx.conf")
        (self.dir / "tokend.conf").write_text(conf)
        d = self.dir
        (d / "nginx.conf").write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/tokend.conf;
}}
""")
        self.args = [binary, "-p", str(d), "-e", str(d / "error.log"), "-c", str(d / "nginx.conf")]
        check = subprocess.run(self.args + ["-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, f"nginx -t refused the configuration:\n{check.stderr}"
        self.process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited with {self.process.returncode}:\n{self.process.stderr.read()}\n{self.log()}")
            try:
                requests.get(self.url + "/", timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"nginx did not answer on {self.url} within {STARTUP_DEADLINE}s\n{self.log()}")

    def log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def nginx_path() -> str:
    binary = nginx_binary()
    if binary is None:
        reason = os.environ.get("INTEROP_NGINX_MISSING", "nginx is not installed")
        print(f"skipping the nginx tests: {reason}")
        pytest.skip(f"nginx unavailable: {reason}")
    version = subprocess.run([binary, "-V"], capture_output=True, text=True).stderr
    if "--with-http_auth_request_module" not in version:
        pytest.skip(f"{binary} was built without ngx_http_auth_request_module")
    return binary


@pytest.fixture(scope="module")
def nginx(nginx_path, public_url, application, gateway):
    tokend = urlsplit(public_url).netloc
    server = Nginx(nginx_path, tokend, application.address, basic(*gateway))
    yield server
    server.stop()


# --- the tests -------------------------------------------------------------------------------

def test_active_token_reaches_the_application_with_tokends_headers_and_forged_ones_overwritten(nginx, app_client):
    token = issue(app_client, "alice", "--scope", "read write", "--audience", "api", "--audience", "web",
                  "--username", "alice@example.com")
    forged = {"X-Tokend-Sub": "mallory", "X-Tokend-Scope": "admin", "X-Tokend-Authorization": "Basic Zm9yZ2Vk"}
    r = requests.get(nginx.url + "/orders/7?page=2", headers={**bearer(token), **forged}, timeout=10)
    assert r.status_code == 200, f"{r.status_code} {r.text}\n{nginx.log()}"
    seen = r.json()
    assert seen["path"] == "/orders/7?page=2"
    h = seen["headers"]
    assert h["x-tokend-sub"] == "alice"
    assert h["x-tokend-client-id"] == app_client
    assert h["x-tokend-scope"] == "read write"
    assert h["x-tokend-aud"] == "api,web"
    assert h["x-tokend-username"] == "alice@example.com"
    assert int(h["x-tokend-exp"]) > time.time()
    # The gateway's credential never reaches the application, nor does the client's forged copy.
    assert "x-tokend-authorization" not in h
    # The user's own Authorization passes on, as nginx's proxy does by default.
    assert h["authorization"] == f"Bearer {token}"


def test_headers_for_claims_a_token_lacks_are_removed_not_passed_on(nginx, app_client):
    token = issue(app_client, "svc")  # no scope, audience or username
    forged = {"X-Tokend-Username": "root", "X-Tokend-Scope": "admin", "X-Tokend-Aud": "everything"}
    r = requests.get(nginx.url + "/", headers={**bearer(token), **forged}, timeout=10)
    assert r.status_code == 200, r.text
    h = r.json()["headers"]
    assert h["x-tokend-sub"] == "svc"
    for name in ("x-tokend-username", "x-tokend-scope", "x-tokend-aud"):
        assert name not in h, f"{name}: {h.get(name)!r} reached the application"


def test_missing_or_invalid_token_is_401_with_tokends_challenge_and_never_reaches_the_application(nginx, application):
    before = len(application.seen)
    none = requests.get(nginx.url + "/orders", timeout=10)
    assert none.status_code == 401
    assert none.headers.get("WWW-Authenticate") == 'Bearer realm="tokend"'
    for value in ("Bearer", "Bearer tkd_at_" + "A" * 43, "Bearer not-a-token"):
        r = requests.get(nginx.url + "/orders", headers={"Authorization": value}, timeout=10)
        assert r.status_code == 401, value
        assert r.headers.get("WWW-Authenticate") == 'Bearer realm="tokend", error="invalid_token"', value
    assert len(application.seen) == before


def test_location_requirements_give_403_insufficient_scope_with_the_challenge(nginx, app_client):
    reader = issue(app_client, "bob", "--scope", "read")
    admin = issue(app_client, "carol", "--scope", "read admin")
    denied = requests.get(nginx.url + "/admin/users", headers=bearer(reader), timeout=10)
    assert denied.status_code == 403, f"{denied.status_code}\n{nginx.log()}"
    assert denied.headers.get("WWW-Authenticate") == 'Bearer error="insufficient_scope", scope="admin"'
    allowed = requests.get(nginx.url + "/admin/users", headers=bearer(admin), timeout=10)
    assert allowed.status_code == 200
    assert allowed.json()["headers"]["x-tokend-sub"] == "carol"
    # Outside /admin/ the reader passes: the requirement belongs to that location only.
    assert requests.get(nginx.url + "/users", headers=bearer(reader), timeout=10).status_code == 200


def test_request_bodies_go_to_the_application_only(nginx, app_client):
    token = issue(app_client, "dave")
    body = os.urandom(200 * 1024)  # past nginx's in-memory buffer and tokend's 64 KiB limit
    r = requests.post(nginx.url + "/upload", headers=bearer(token), data=body, timeout=30)
    assert r.status_code == 200, f"{r.status_code}\n{nginx.log()}"
    assert r.json()["body_length"] == len(body)
    assert r.json()["method"] == "POST"


def test_revocation_turns_away_the_token_within_the_propagation_bound(nginx, app_client):
    token = issue(app_client, "erin")
    assert requests.get(nginx.url + "/", headers=bearer(token), timeout=10).status_code == 200
    tokenctl("revoke", "--token", token, "--reason", "interop nginx")
    revoked_at = time.monotonic()
    status = None
    while time.monotonic() - revoked_at < REVOCATION_DEADLINE:
        status = requests.get(nginx.url + "/", headers=bearer(token), timeout=10).status_code
        if status == 401:
            break
        time.sleep(0.01)
    latency = time.monotonic() - revoked_at
    print(f"nginx denied the revoked token {latency * 1000:.1f} ms after tokenctl revoke returned")
    assert status == 401, f"still {status} {REVOCATION_DEADLINE}s after the revocation"
    assert latency < REVOCATION_ASSERTED


def test_wrong_gateway_credentials_are_401_with_the_gateway_challenge(nginx_path, public_url, application, gateway, app_client):
    token = issue(app_client, "frank")
    wrong = Nginx(nginx_path, urlsplit(public_url).netloc, application.address, basic(gateway[0], gateway[1] + "x"))
    try:
        r = requests.get(wrong.url + "/", headers=bearer(token), timeout=10)
        assert r.status_code == 401
        assert r.headers.get("WWW-Authenticate") == 'Basic realm="tokend-gateway"'
    finally:
        wrong.stop()
