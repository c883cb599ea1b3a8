"""What the gateway tests (test_nginx.py, test_traefik.py) share: the application behind the
gateway, the example files' substitutions and tokenctl."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"
STARTUP_DEADLINE = 30.0
# SPEC's bound across replicas is 100 ms at p99; through one replica (read-your-writes) a revocation
# is at once. The assertion is generous because the machine may be busy; the latency is printed.
REVOCATION_DEADLINE = 5.0
REVOCATION_ASSERTED = 2.0


class EchoHandler(BaseHTTPRequestHandler):
    """The application: answers every method with what it received, as JSON."""

    def _echo(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = value if name not in headers else headers[name] + ", " + value
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        payload = json.dumps({"method": self.command, "path": self.path, "headers": headers,
                              "body_length": len(body)}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _echo

    def log_message(self, format, *args):  # noqa: A002 - keep pytest's output clean
        pass


class Application:
    """EchoHandler on a free loopback port, in a thread; `seen` lists the paths it was asked for."""

    def __init__(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
        self.server.seen = []  # type: ignore[attr-defined]
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def seen(self) -> list[str]:
        return self.server.seen  # type: ignore[attr-defined]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def substitute(text: str, old: str, new: str, where: str) -> str:
    """Replaces `old`, which must occur exactly once (so that a change to the example fails here
    instead of silently testing something else)."""
    count = text.count(old)
    assert count == 1, f"{where}: expected {old!r} once, found it {count} times"
    return text.replace(old, new)


def tokenctl(*args: str) -> dict:
    out = subprocess.run([os.environ["INTEROP_TOKENCTL"], *args, "--output", "json"],
                         check=True, capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout)


def issue(client_id: str, subject: str, *extra: str) -> str:
    return tokenctl("tokens", "issue", "--client", client_id, "--subject", subject, *extra)["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
