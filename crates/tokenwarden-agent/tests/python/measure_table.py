"""Re-measures issue 18's table through the agent: each client, unchanged but for its base URL and
secret, against `tokenwarden sim` behind `tokenwarden agent`.

Run: /work/venv/bin/python crates/tokenwarden-agent/tests/python/measure_table.py
(TOKENWARDEN_BIN as for the tests; prints a Markdown table). Not a test: about a minute.
"""

import pathlib
import re
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from conftest import Agent, Sim, run_threads  # noqa: E402
from test_clients import TutorialTokenManager  # noqa: E402

import requests  # noqa: E402

SCENARIOS = [
    # (column, simulator knobs, calls, threads)
    ("3-s tokens", ("--token-ttl", "3s", "--latency", "25ms"), 300, 1),
    ("revoked every 50 calls", ("--revoke-every", "50", "--latency", "5ms"), 300, 1),
    ("8 threads", ("--token-ttl", "3s", "--latency", "50ms"), 600, 8),
    ("an API rate limit", ("--rate-limit", "40", "--rate-limit-window", "1s"), 200, 8),
]


def sdk_client(agent):
    import PureCloudPlatformClientV2 as gc

    gc.configuration.host = agent.url
    api = gc.api_client.ApiClient().get_client_credentials_token("any-client-id", agent.key)
    users = gc.UsersApi(api)
    return lambda i: users.get_user(f"user-{i % 100:06d}").id is not None


def tutorial_client(agent):
    tm = TutorialTokenManager(agent.url + "/oauth/token", "any", agent.key)
    local = threading.local()

    def call(i):
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        r = s.get(agent.url + f"/api/v2/users/user-{i % 100:06d}",
                  headers={"Authorization": "Bearer " + tm.get()}, timeout=30)
        return r.status_code == 200

    return call


def authlib_client(agent):
    from authlib.integrations.requests_client import OAuth2Session

    session = OAuth2Session("any", agent.key, token_endpoint=agent.url + "/oauth/token")
    session.fetch_token(grant_type="client_credentials")
    return lambda i: session.get(agent.url + f"/api/v2/users/user-{i % 100:06d}",
                                 timeout=30).status_code == 200


CLIENTS = [
    ("official Genesys Python SDK 269", sdk_client),
    ("hand-written token manager (requests)", tutorial_client),
    ("authlib 1.9", authlib_client),
]


def local_tokens(agent):
    with urllib.request.urlopen(agent.url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return int(re.search(r"^tokenwarden_agent_local_tokens_total (\d+)$", text, re.M).group(1))


def measure(make, knobs, calls, threads):
    with tempfile.TemporaryDirectory() as tmp:
        sim = Sim(*knobs)
        agent = Agent(sim, pathlib.Path(tmp))
        try:
            call = make(agent)
            per = calls // threads
            t0 = time.monotonic()

            def worker(w):
                ok = 0
                for k in range(per):
                    try:
                        ok += bool(call(w * per + k))
                    except Exception:  # noqa: BLE001 - a failed call is what is counted
                        pass
                return ok

            ok = sum(run_threads(threads, worker))
            elapsed = time.monotonic() - t0
            j = sim.journal()
            return {
                "ok": ok, "calls": calls, "elapsed": elapsed,
                "tokens": j["tokens_issued"], "token_requests": j["token_requests"],
                "at_once": j["max_concurrent_token_requests"],
                "revoked": j["api_revoked_token"], "local": local_tokens(agent),
                "limited": j["api_rate_limited"],
            }
        finally:
            agent.stop()
            sim.stop()


def main():
    print("| client, unchanged but base URL and secret | " + " | ".join(s[0] for s in SCENARIOS) + " |")
    print("|---|" + "---|" * len(SCENARIOS))
    for name, make in CLIENTS:
        cells = []
        for _, knobs, calls, threads in SCENARIOS:
            m = measure(make, knobs, calls, threads)
            cells.append(
                f"{m['ok']} of {m['calls']}; {m['token_requests']} token requests in "
                f"{m['elapsed']:.1f} s, {m['at_once']} at once"
            )
            print(f"  {name} / {knobs}: {m}", file=sys.stderr)
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
