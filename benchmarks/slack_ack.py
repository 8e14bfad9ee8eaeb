"""Slack ack latency and throughput on the HTTP endpoint, chat model excluded.

A server process runs the real Bolt app (signature check, authorization, the Redis
``SET NX`` retry de-duplication, the listener) behind ``/slack/events``; this
process is the load: signed ``event_callback`` requests over loopback, each with a
new event id. The events are reactions with an emoji that triggers no answer, so
the chat model never runs; what is measured is the path to the ack.

- ``open loop``: requests sent on a fixed schedule (``--rate``, default 100/s, the
  target) for ``--seconds``; latency p50/p99 from send to response.
- ``closed loop``: ``--concurrency`` requests in flight for ``--seconds``; events/s.

Baseline, measured in the same run the same way: a bare aiohttp handler that
answers 200 without looking at the request. Each figure is the median of
``--runs`` runs. Target: p99 ack ≤ 100 ms at 100 events/s.

    python benchmarks/slack_ack.py [--rate 100] [--seconds 10] [--runs 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

SECRET = "benchmark-signing-secret"


# -- server side ------------------------------------------------------------


def serve(kind: str, port: int, data_dir: str) -> None:
    from aiohttp import web

    if kind == "bare":

        async def ok(_: web.Request) -> web.Response:
            return web.Response(text="")

        web_app = web.Application()
        web_app.router.add_post("/slack/events", ok)
    else:
        from bot.slack.app import build_slack_app
        from bot.slack.credentials import SlackCredentials
        from bot.slack.server import build_web_app
        from core.app import App
        from core.settings import load_settings
        from tests.bot.slack.mock_web_api import BOT_TOKEN, MockSlack

        mock = MockSlack().start()  # auth.test, once, for Bolt's authorization
        core = App(load_settings(Path(data_dir) / "none.toml", environ={"ARCHIVIST_DATA_DIR": data_dir}))
        core.redis.ping()  # start the embedded Redis before the clock runs
        bolt = build_slack_app(core, SlackCredentials(BOT_TOKEN, SECRET, api_url=mock.api_url))
        web_app = build_web_app(bolt)
    web.run_app(web_app, host="127.0.0.1", port=port, print=None, access_log=None)


# -- load side --------------------------------------------------------------


def signed(body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}


_IDS = iter(range(10**9))


def event() -> str:
    n = next(_IDS)
    return json.dumps(
        {
            "token": "x",
            "team_id": "T0TEAM",
            "api_app_id": "A0",
            "type": "event_callback",
            "event_id": f"EvBENCH{time.time_ns()}{n}",
            "event_time": int(time.time()),
            "event": {
                "type": "reaction_added",
                "user": "UBENCH",
                "reaction": "tada",
                "item": {"type": "message", "channel": "CBENCH", "ts": f"{n}.000001"},
                "event_ts": f"{n}.5",
            },
        }
    )


async def _one(session, url: str, latencies: list[float]) -> None:
    body = event()
    start = time.perf_counter()
    async with session.post(url, data=body, headers=signed(body)) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
    latencies.append((time.perf_counter() - start) * 1000)


async def open_loop(url: str, rate: float, seconds: float) -> tuple[float, float]:
    import aiohttp

    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for _ in range(20):  # warm up: connections, Bolt's auth.test
            await _one(session, url, [])
        start = time.perf_counter()
        tasks = []
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(_one(session, url, latencies)))
        await asyncio.gather(*tasks)
    latencies.sort()
    return statistics.median(latencies), latencies[int(0.99 * (len(latencies) - 1))]


async def closed_loop(url: str, concurrency: int, seconds: float) -> float:
    import aiohttp

    done = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                await _one(session, url, [])
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(kind: str, args: argparse.Namespace, data_dir: str) -> dict[str, float]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port), "--data-dir", data_dir]
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError(f"{kind} server did not start") from None
                time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/slack/events"
        p50, p99 = asyncio.run(open_loop(url, args.rate, args.seconds))
        rps = asyncio.run(closed_loop(url, args.concurrency, args.seconds))
        return {"p50_ms": p50, "p99_ms": p99, "events_per_s": rps}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--serve", choices=("bolt", "bare"))
    parser.add_argument("--port", type=int)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.data_dir)
        return
    results: dict[str, list[dict[str, float]]] = {"bolt": [], "bare": []}
    with tempfile.TemporaryDirectory() as data_dir:
        for _ in range(args.runs):
            for kind in ("bare", "bolt"):  # interleaved, so drift hits both alike
                results[kind].append(measure(kind, args, data_dir))
    medians = {
        kind: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for kind, runs in results.items()
    }
    print(
        f"{args.runs} runs, open loop {args.rate:.0f} events/s for {args.seconds:.0f}s"
        f", closed loop x{args.concurrency}"
    )
    for kind, label in (("bare", "bare aiohttp (baseline)"), ("bolt", "Archivist Bolt endpoint")):
        m = medians[kind]
        print(
            f"  {label:26s} ack p50 {m['p50_ms']:6.2f} ms  p99 {m['p99_ms']:6.2f} ms"
            f"  {m['events_per_s']:7.0f} events/s"
        )
    b, a = medians["bolt"], medians["bare"]
    print(
        f"  ratio bolt/bare: p50 x{b['p50_ms'] / a['p50_ms']:.1f}, p99 x{b['p99_ms'] / a['p99_ms']:.1f}, "
        f"throughput x{b['events_per_s'] / a['events_per_s']:.2f}"
    )
    print(f"  target p99 ≤ 100 ms at 100 events/s: {'met' if b['p99_ms'] <= 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
