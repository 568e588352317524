"""Fixtures for the agent's Python tests: each test starts `tokenwarden sim` and `tokenwarden agent`
itself (the binary from env TOKENWARDEN_BIN, default <repo>/target/debug/tokenwarden) and reads
what reached the API from the simulator's journal (`GET /sim/journal`).

Run: /work/venv/bin/python -m pytest crates/tokenwarden-agent/tests/python
"""

import json
import os
import pathlib
import subprocess
import threading
import time
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]
BIN = os.environ.get("TOKENWARDEN_BIN", str(REPO / "target" / "debug" / "tokenwarden"))
CLIENT_ID = "tw-client"


def _read_line_with(stream, marker, timeout=20.0):
    """The first line of `stream` containing `marker` (the others are kept for the failure)."""
    seen = []
    found = {}

    def reader():
        for raw in stream:
            line = raw.decode(errors="replace")
            seen.append(line)
            if marker in line:
                found["line"] = line
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    if "line" not in found:
        raise RuntimeError(f"no line with {marker!r} within {timeout}s: {''.join(seen)}")
    return found["line"]


class Sim:
    """A `tokenwarden sim` process and its admin API."""

    def __init__(self, *knobs):
        self.proc = subprocess.Popen(
            [BIN, "sim", "--port", "0", *knobs],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        line = _read_line_with(self.proc.stdout, "listening on")
        self.url = line.strip().split("listening on ")[1]
        self.secret = None
        # The banner names the client secret this simulator accepts.
        self.token_url = self.url + "/oauth/token"

    def _admin(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read()
            return json.loads(text) if text else None

    def journal(self):
        return self._admin("GET", "/sim/journal")

    def reset_journal(self):
        self._admin("POST", "/sim/journal/reset")

    def configure(self, **patch):
        return self._admin("PATCH", "/sim/config", patch)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Agent:
    """A `tokenwarden agent` process in front of a simulator."""

    def __init__(self, sim, tmp_path, *args):
        self.key_file = tmp_path / "agent.key"
        self.proc = subprocess.Popen(
            [
                BIN, "agent", "--listen", "127.0.0.1:0", "--key-file", str(self.key_file),
                "--token-url", sim.token_url, "--api-base", sim.url, "--client-id", CLIENT_ID,
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "GENESYSCLOUD_OAUTHCLIENT_SECRET": sim_secret()},
        )
        line = _read_line_with(self.proc.stderr, "agent listening on")
        self.url = line.strip().split("agent listening on ")[1].split()[0]
        self.key = self.key_file.read_text().strip()
        # Keep draining stderr so the agent never blocks on a full pipe.
        self.log = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for raw in self.proc.stderr:
            self.log.append(raw.decode(errors="replace"))

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def sim_secret():
    # The simulator's default client secret (tokenwarden_sim::DEFAULT_CLIENT_SECRET).
    return "tw-secret"


@pytest.fixture
def start(tmp_path):
    """start(sim_knobs..., agent_args=[...]) -> (sim, agent); both stopped after the test."""
    started = []

    def _start(*knobs, agent_args=()):
        sim = Sim(*knobs)
        started.append(sim)
        agent = Agent(sim, tmp_path, *agent_args)
        started.append(agent)
        return sim, agent

    yield _start
    for p in reversed(started):
        p.stop()


def run_threads(n, fn):
    """Runs fn(i) in n threads; returns their results; re-raises the first failure."""
    results = [None] * n
    errors = []

    def body(i):
        try:
            results[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def until(deadline):
    return time.monotonic() < deadline
