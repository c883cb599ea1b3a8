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
from typing import Any, Callable

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
class Registered:
    """A client a test registered for itself with `tokenctl clients create`: what it asked for, and
    tokenctl's JSON answer."""
    client_id: str
    client_secret: str
    roles: tuple[str, ...]
    audiences: tuple[str, ...]
    scope: str | None
    created: dict


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


def tokenctl_json(*args: str) -> Any:
    """Runs `tokenctl ARGS --output json` (against the tokend under test) and returns its parsed
    output; a non-zero exit fails the calling test with tokenctl's message."""
    out = subprocess.run([os.environ["INTEROP_TOKENCTL"], *args, "--output", "json"],
                         capture_output=True, text=True, timeout=30)
    # Only the subcommand is named: the other arguments may hold tokens.
    assert out.returncode == 0, f"tokenctl {' '.join(args[:2])} exited {out.returncode}: {out.stderr.strip()[:500]}"
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def make_client() -> Callable[..., Registered]:
    """make_client(prefix, roles, audiences=(), scope=None) -> Registered: a new client, registered
    with `tokenctl clients create interop-PREFIX-<random> --role R... [--audience A...] [--scope S]`,
    unique per call so that a reused database never collides with an earlier run's clients."""

    def _make(prefix: str, roles: list[str] | tuple[str, ...], audiences: list[str] | tuple[str, ...] = (),
              scope: str | None = None) -> Registered:
        args = ["clients", "create", f"interop-{prefix}-{secrets.token_hex(4)}"]
        for role in roles:
            args += ["--role", role]
        for audience in audiences:
            args += ["--audience", audience]
        if scope is not None:
            args += ["--scope", scope]
        created = tokenctl_json(*args)
        return Registered(created["client_id"], created["client_secret"], tuple(roles), tuple(audiences), scope,
                          created)

    return _make
