"""Benchmark: the cost of auth.token() from Python, and a requests job with tokenwarden.Auth
against the same job with a fixed Authorization header, at 20 ms API latency.

    python python/bench/bench_auth.py [--requests 300] [--latency-ms 20]

Starts the simulator from $TOKENWARDEN_BIN (default target/debug/tokenwarden). The two jobs run
in alternating rounds so that drift in the machine's load hits both alike.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import time
import timeit

import requests

import tokenwarden

REPO = pathlib.Path(__file__).resolve().parents[2]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=300, help="requests per job")
    p.add_argument("--latency-ms", type=int, default=20)
    p.add_argument("--rounds", type=int, default=6)
    a = p.parse_args()
    binary = os.environ.get("TOKENWARDEN_BIN", str(REPO / "target" / "debug" / "tokenwarden"))
    sim = subprocess.Popen(
        [binary, "sim", "--port", "0", "--latency", f"{a.latency_ms}ms"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        base = re.search(r"listening on (http://\S+)", sim.stdout.readline()).group(1)
        auth = tokenwarden.Auth(base + "/oauth/token", "tw-client", "tw-secret")
        auth.token()

        n = 200_000
        per_call = min(timeit.repeat(auth.token, number=n, repeat=5)) / n
        print(f"auth.token(): {per_call * 1e9:.0f} ns per call (best of 5 x {n:,})")

        with_auth = requests.Session()
        with_auth.auth = auth
        fixed = requests.Session()
        fixed.headers["Authorization"] = "Bearer " + auth.token()
        urls = [f"{base}/api/v2/users/user-{i % 999 + 1:06d}" for i in range(a.requests)]
        per_round = a.requests // a.rounds

        def job(session: requests.Session, part: list) -> float:
            t = time.perf_counter()
            for u in part:
                session.get(u).raise_for_status()
            return time.perf_counter() - t

        # Warm both connection pools.
        job(with_auth, urls[:5])
        job(fixed, urls[:5])
        t_auth = t_fixed = 0.0
        for r in range(a.rounds):
            part = urls[r * per_round : (r + 1) * per_round]
            if r % 2:
                t_fixed += job(fixed, part)
                t_auth += job(with_auth, part)
            else:
                t_auth += job(with_auth, part)
                t_fixed += job(fixed, part)
        done = per_round * a.rounds
        print(
            f"requests job, {done} sequential GETs at {a.latency_ms} ms latency: "
            f"Auth {done / t_auth:.1f} req/s, fixed header {done / t_fixed:.1f} req/s, "
            f"ratio {t_fixed / t_auth:.3f}"
        )
    finally:
        sim.terminate()
        sim.wait(5)


if __name__ == "__main__":
    main()
