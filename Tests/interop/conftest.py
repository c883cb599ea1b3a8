"""Fixtures of the interoperability tests. scripts/interop-test sets up everything they read:

INTEROP_PUBLIC_URL  tokend's public listener, e.g. http://127.0.0.1:PORT
INTEROP_GRPC_ADDRESS  tokend's gRPC listener, host:port (h2c)
INTEROP_CLIENTS     JSON file: {"main"|"peer"|"issuer_only"|"colon": tokenctl's `clients create` output}
INTEROP_GEN_DIR     Python messages and connect-python stubs generated from proto/
INTEROP_TOKENCTL    tokenctl, with TOKENCTL_SERVER / TOKENCTL_ADMIN_TOKEN set, to issue tokens
INTEROP_STORE       which store the server runs on (only shown in the report)
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass

import pytest

sys.path.insert(0, os.environ["INTEROP_GEN_DIR"])

# What each library put on the wire, collected by the tests and printed at the end of the run.
WIRE: dict[str, dict[str, str]] = {}


def record_wire(label: str, headers: dict[str, str]) -> None:
    """Keeps the interesting request headers of one library call (credentials redacted)."""
    keep = ("content-type", "content-encoding", "accept-encoding", "accept", "user-agent", "authorization",
            "connect-protocol-version")
    shown = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower not in keep:
            continue
        if lower == "authorization":
            value = value.split(" ", 1)[0] + " …"
        shown[lower] = value
    WIRE.setdefault(label, shown)


def pytest_report_header(config):
    return f"tokend interop: store={os.environ.get('INTEROP_STORE', '?')} url={os.environ.get('INTEROP_PUBLIC_URL')}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not WIRE:
        return
    terminalreporter.section("what the client libraries sent")
    for label in sorted(WIRE):
        fields = ", ".join(f"{k}: {v}" for k, v in sorted(WIRE[label].items()))
        terminalreporter.write_line(f"{label}: {fields}")


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class Issued:
    access_token: str
    refresh_token: str
    grant_id: str
    jti: str


@pytest.fixture(scope="session")
def public_url() -> str:
    return os.environ["INTEROP_PUBLIC_URL"].rstrip("/")


@pytest.fixture(scope="session")
def clients() -> dict[str, Client]:
    with open(os.environ["INTEROP_CLIENTS"], encoding="utf-8") as f:
        raw = json.load(f)
    return {name: Client(c["client_id"], c["client_secret"]) for name, c in raw.items()}


@pytest.fixture(scope="session")
def main_client(clients) -> Client:
    return clients["main"]


@pytest.fixture(scope="session")
def issue():
    """issue(client_id, subject, scope="read write") -> Issued, through `tokenctl tokens issue --refresh`."""

    def _issue(client_id: str, subject: str, scope: str = "read write") -> Issued:
        out = subprocess.run(
            [os.environ["INTEROP_TOKENCTL"], "tokens", "issue", "--client", client_id, "--subject", subject,
             "--scope", scope, "--refresh", "--output", "json"],
            check=True, capture_output=True, text=True, timeout=30,
        )
        data = json.loads(out.stdout)
        return Issued(data["access_token"], data["refresh_token"], data["grant_id"], data["jti"])

    return _issue


@pytest.fixture(scope="session")
def gateway() -> tuple[str, str]:
    """A gateway's tokend client (role introspect, as deploy/examples ask for), unique per run:
    (client_id, client_secret)."""
    out = subprocess.run(
        [os.environ["INTEROP_TOKENCTL"], "clients", "create", f"interop-gateway-{secrets.token_hex(4)}",
         "--role", "introspect", "--output", "json"],
        check=True, capture_output=True, text=True, timeout=30,
    )
    created = json.loads(out.stdout)
    return created["client_id"], created["client_secret"]


@pytest.fixture(scope="session")
def app_client(main_client) -> str:
    """The client the gateway tests' tokens are issued to (any registered client will do)."""
    return main_client.client_id
