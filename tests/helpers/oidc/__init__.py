"""A real OpenID provider on loopback for the tests: panva's `oidc-provider` (npm),
run with node from `provider.mjs` beside this file.

`scripts/test` installs the package and names its directory in
GATEWAY_TEST_OIDC_PROVIDER. Without it a test skips, except under CI=true (or
GATEWAY_REQUIRE_BROKER=1), where a missing provider fails the test loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ROOT, broker_required, free_port

PROVIDER_VERSION = "8.8.1"  # keep in step with OIDC_PROVIDER_VERSION in scripts/test
PROVIDER_DIR = os.environ.get(
    "GATEWAY_TEST_OIDC_PROVIDER", str(ROOT / ".cache" / f"oidc-provider-{PROVIDER_VERSION}")
)
PROVIDER_SCRIPT = Path(__file__).resolve().parent / "provider.mjs"
CLIENT_ID = "veilig-thuis-desk"
CLIENT_SECRET = "desk-client-secret-for-tests-only"
PASSWORD = "idp-wachtwoord-2026"  # every test account's password at the provider
START_SECONDS = 20


@dataclass(frozen=True)
class OidcProvider:
    issuer: str
    port: int
    client_id: str
    client_secret: str
    password: str
    log_path: Path


def require_provider() -> tuple[str, Path]:
    """node and the installed package, or a skip (a failure where tests may not skip)."""
    node = shutil.which("node")
    package = Path(PROVIDER_DIR) / "node_modules" / "oidc-provider" / "package.json"
    missing = None
    if node is None:
        missing = "node is not on PATH"
    elif not package.exists():
        missing = f"oidc-provider is missing at {PROVIDER_DIR} (scripts/test installs it)"
    if missing is not None:
        if broker_required():
            pytest.fail(missing + ": the OpenID Connect tests may not skip here", pytrace=False)
        pytest.skip(missing)
    assert node is not None
    return node, Path(PROVIDER_DIR)


@contextlib.asynccontextmanager
async def oidc_provider(
    redirect_uris: Sequence[str], log_path: Path, *, port: int | None = None
) -> AsyncIterator[OidcProvider]:
    """The provider on 127.0.0.1, answering discovery, until the block ends. Its output
    goes to `log_path` (appended: a restart on the same port keeps the earlier run's)."""
    node, directory = require_provider()
    port = port or free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "OIDC_PORT": str(port),
        "OIDC_ISSUER": issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_REDIRECT_URIS": ",".join(redirect_uris),
        "OIDC_PASSWORD": PASSWORD,
        "OIDC_PROVIDER_DIR": str(directory),
    }
    process = _start([node, str(PROVIDER_SCRIPT)], env, directory, log_path)
    try:
        await _wait_for_discovery(process, issuer, log_path)
        yield OidcProvider(issuer, port, CLIENT_ID, CLIENT_SECRET, PASSWORD, log_path)
    finally:
        _stop(process)


def _start(args: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> subprocess.Popen:
    # A file, not a pipe: an unread pipe fills up and stalls the provider.
    with open(log_path, "ab") as log:
        return subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


async def _wait_for_discovery(process: subprocess.Popen, issuer: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    url = issuer + "/.well-known/openid-configuration"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"oidc-provider exited with {process.returncode}:\n{_tail(log_path)}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    _stop(process)
    raise RuntimeError(f"oidc-provider did not answer {url} within {START_SECONDS} s:\n{_tail(log_path)}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
