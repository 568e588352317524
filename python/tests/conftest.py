"""Fixtures: the embedded simulator, started from the tokenwarden binary (`tokenwarden sim`).

The binary is $TOKENWARDEN_BIN, default <repo>/target/debug/tokenwarden. Each test gets its own
simulator, with the knobs of its `@pytest.mark.sim(...)` marker (the `sim` command's flags), and
reads what happened from the simulator's journal (`GET /sim/journal`), never from timing alone.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import tempfile
import urllib.request
from typing import Any, Dict

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("TOKENWARDEN_BIN", str(REPO / "target" / "debug" / "tokenwarden"))

CLIENT_ID = "tw-client"
CLIENT_SECRET = "tw-secret"

# Loopback only, whatever proxy the environment names.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Simulator:
    """A running `tokenwarden sim --port 0 ...`, with its admin API."""

    def __init__(self, *args: str) -> None:
        if not os.path.exists(BIN):
            pytest.fail(
                f"the tokenwarden binary {BIN} does not exist: build it (cargo build) or set "
                "TOKENWARDEN_BIN"
            )
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [BIN, "sim", "--port", "0", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        # The banner's first line: "tokenwarden simulator listening on http://127.0.0.1:PORT".
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if not m:
            self.proc.kill()
            self._log.seek(0)
            pytest.fail(f"the simulator did not start: {line!r} {self._log.read()!r}")
        self.base_url = m.group(1)
        self.token_url = self.base_url + "/oauth/token"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with _opener.open(req, timeout=5) as r:
            text = r.read()
        return json.loads(text) if text else None

    def journal(self) -> Dict[str, Any]:
        """The counters (and recent entries) of everything the simulator saw."""
        return self._call("GET", "/sim/journal")

    def configure(self, **knobs: Any) -> None:
        """Changes knobs at runtime (`PATCH /sim/config`; durations as `*_ms`)."""
        self._call("PATCH", "/sim/config", knobs)

    def revoke_all(self) -> None:
        """Revokes every token issued so far."""
        self._call("POST", "/sim/revoke-all")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.proc.stdout.close()
        self._log.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sim(*flags): flags of `tokenwarden sim` for this test")


@pytest.fixture
def sim(request: pytest.FixtureRequest):
    marker = request.node.get_closest_marker("sim")
    s = Simulator(*(marker.args if marker else ()))
    yield s
    s.close()


@pytest.fixture
def auth(sim: Simulator):
    import tokenwarden

    return tokenwarden.Auth(sim.token_url, CLIENT_ID, CLIENT_SECRET)
