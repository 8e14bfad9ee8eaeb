"""The Slack HTTP endpoint under hostile input: every malformed request gets a 4xx, never a
500 or a traceback; it binds loopback by default and stops cleanly on SIGTERM.

The real Bolt app runs behind the real aiohttp endpoint (tests/bot/slack/conftest.py), with
Slack's Web API stood in for by a local server. Requests are signed as Slack signs them:
https://api.slack.com/authentication/verifying-requests-from-slack
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import pytest_asyncio
from typer.testing import CliRunner

from bot.slack.app import build_slack_app, serve_slack
from bot.slack.credentials import SlackCredentials
from bot.slack.server import MAX_BODY_BYTES, build_web_app
from core.errors import ConfigError
from tests.bot.slack.conftest import Harness, start_harness
from tests.bot.slack.mock_web_api import APP_TOKEN, BOT_TOKEN, BOT_USER_ID, MockSlack
from tests.bot.slack.signed import SIGNING_SECRET, event_body, signature

ROOT = Path(__file__).resolve().parents[2]  # the subprocess imports this checkout's code
MENTION = {
    "type": "app_mention",
    "user": "UASKER",
    "text": f"<@{BOT_USER_ID}> How many vacation days do employees in the Netherlands get?",
    "ts": "1.000001",
    "channel": "CGENERAL",
    "event_ts": "1.000001",
}


@pytest.fixture
def fake_slack() -> Iterator[MockSlack]:
    mock = MockSlack().start()
    yield mock
    mock.stop()


@pytest.fixture
def core(make_remote_app):  # nothing synced: these requests should never reach the assistant
    return make_remote_app(sync=())


@pytest_asyncio.fixture
async def slack(core, fake_slack: MockSlack, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Harness]:
    caplog.set_level(logging.INFO)
    harness = await start_harness(core, fake_slack)
    yield harness
    await harness.client.close()


def sign_bytes(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


async def post(harness: Harness, body: bytes, headers: dict[str, str]):
    response = await harness.client.post("/slack/events", data=body, headers=headers)
    return response.status, await response.text()


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert "Traceback" not in caplog.text


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "forge",
    [
        lambda ts, body: signature("not-the-signing-secret", ts, body),
        lambda ts, body: "v0=" + "é" * 64,  # non-ASCII: hmac.compare_digest raises on it
    ],
    ids=["wrong-secret", "non-ascii"],
)
async def test_forged_signature_is_refused_and_nothing_answered(slack: Harness, caplog, forge) -> None:
    body = json.dumps(event_body(MENTION))
    ts = str(int(time.time()))
    status, _ = await post(
        slack,
        body.encode(),
        {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": forge(ts, body),
        },
    )
    assert status == 401
    await slack.send.event({**MENTION, "type": "reaction_added"})  # a real one still gets through...
    assert not slack.mock.of("chat.postMessage")  # ...but the forged mention was never answered
    assert_no_traceback(caplog)


@pytest.mark.asyncio
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("timestamp", ["soon", "", "1e9", "9" * 5000], ids=["word", "empty", "float", "huge"])
async def test_non_numeric_timestamp_is_refused(slack: Harness, caplog, signed: bool, timestamp: str) -> None:
    body = json.dumps(event_body(MENTION))
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": timestamp}
    if signed:
        headers["X-Slack-Signature"] = signature(SIGNING_SECRET, timestamp, body)
    status, _ = await post(slack, body.encode(), headers)
    assert status in (400, 401)
    assert_no_traceback(caplog)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"type": "event_callback", "event": ', "application/json"),
        ("[1, 2, 3]", "application/json"),  # JSON, but not an object
        ('"event_callback"', "application/json"),
        ("{not json at all", "application/x-www-form-urlencoded"),  # Bolt reads "{..." as JSON
        (urlencode({"payload": "{broken"}), "application/x-www-form-urlencoded"),
        (urlencode({"payload": "[]"}), "application/x-www-form-urlencoded"),
    ],
    ids=["truncated", "list", "string", "brace-form", "payload-broken", "payload-list"],
)
async def test_signed_malformed_body_is_a_400(slack: Harness, caplog, body: str, content_type: str) -> None:
    response = await slack.send.raw(body, content_type)
    assert response.status == 400, await response.text()
    assert_no_traceback(caplog)


@pytest.mark.asyncio
async def test_signed_body_that_is_not_utf8_is_a_400(slack: Harness, caplog) -> None:
    body = b'{"type": "event_callback", "text": "caf\xe9"}'  # Latin-1, not UTF-8
    ts = str(int(time.time()))
    status, _ = await post(
        slack,
        body,
        {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": sign_bytes(body, ts),
        },
    )
    assert status == 400
    assert_no_traceback(caplog)


@pytest.mark.asyncio
async def test_oversize_body_is_refused(slack: Harness, caplog) -> None:
    body = '{"pad": "' + "x" * MAX_BODY_BYTES + '"}'
    response = await slack.send.raw(body, "application/json")
    assert response.status in (400, 413)
    assert_no_traceback(caplog)


def _fuzz_request(rng: random.Random) -> tuple[bytes, dict[str, str]]:
    """One request Slack would never send: random bytes or odd JSON, under random headers,
    sometimes correctly signed so that Bolt itself gets to read the body."""
    printable = "".join(map(chr, range(0x20, 0x7F))) + "é€\u00a0ü"
    text = lambda n: "".join(rng.choice(printable) for _ in range(n))  # noqa: E731
    event = json.dumps(event_body(MENTION)).encode()
    odd_values = [None, 0, -1, 1e308, "", [], {}, [1], "x" * 50, True]
    odd_keys = ["type", "event", "authorizations", "team", "enterprise", "team_id", "event_id", "payload"]
    body = rng.choice(
        [
            lambda: rng.randbytes(rng.randrange(0, 400)),
            lambda: bytes(b ^ (1 << rng.randrange(8)) if rng.random() < 0.05 else b for b in event),
            lambda: json.dumps({k: rng.choice(odd_values) for k in rng.sample(odd_keys, 3)}).encode(),
            lambda: json.dumps(rng.choice(odd_values)).encode(),
            lambda: urlencode({"payload": text(rng.randrange(40)), text(5): text(5)}).encode(),
        ]
    )()
    now = str(int(time.time()))
    timestamp = rng.choice([now, now, now, text(rng.randrange(12)), str(rng.randrange(10**30)), None])
    headers = {
        "Content-Type": rng.choice(
            [
                "application/json",
                "application/x-www-form-urlencoded",
                "text/plain",
                text(12),
                "application/json; charset=nonsense",
            ]
        )
    }
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    sig = rng.choice(["signed", "signed", "signed", "random", "empty", "absent"])
    if sig == "signed":
        headers["X-Slack-Signature"] = sign_bytes(body, timestamp or "")
    elif sig == "random":
        headers["X-Slack-Signature"] = text(rng.randrange(70))
    elif sig == "empty":
        headers["X-Slack-Signature"] = ""
    return body, headers


@pytest.mark.asyncio
async def test_fuzzed_requests_get_a_4xx_and_no_traceback(slack: Harness, caplog) -> None:
    rng = random.Random(1234)
    statuses = []
    for i in range(200):
        body, headers = _fuzz_request(rng)
        status, text = await post(slack, body, headers)
        assert 400 <= status < 500, (i, status, body[:80], headers, text)
        statuses.append(status)
    assert_no_traceback(caplog)
    assert not slack.mock.of("chat.postMessage")
    assert {400, 401} <= set(statuses)  # both the header checks and the body checks were reached


def test_http_app_is_never_built_without_a_signing_secret(core, fake_slack: MockSlack) -> None:
    socket_only = SlackCredentials(BOT_TOKEN, app_token=APP_TOKEN, api_url=fake_slack.api_url)
    bolt = build_slack_app(core, socket_only)  # fine for Socket Mode, which carries no signatures...
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        build_web_app(bolt)  # ...but never served over HTTP unverified
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        serve_slack(core, http=True, port=0, credentials=socket_only)


def test_serve_slack_http_binds_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.cli
    import bot.cli.context
    import bot.slack.app

    calls: list[dict] = []
    monkeypatch.setattr(bot.slack.app, "serve_slack", lambda core, **kwargs: calls.append(kwargs))
    monkeypatch.setattr(bot.cli.context, "application", lambda: None)
    runner = CliRunner()
    assert runner.invoke(bot.cli.app, ["serve", "slack", "--http"]).exit_code == 0
    assert runner.invoke(bot.cli.app, ["serve", "slack", "--http", "--host", "0.0.0.0"]).exit_code == 0
    assert [c.get("host") for c in calls] == ["127.0.0.1", "0.0.0.0"]


def test_sigterm_stops_the_http_server_cleanly(core, fake_slack: MockSlack, caplog) -> None:
    """serve_slack binds 127.0.0.1, logs the real address, and returns normally on SIGTERM."""
    caplog.set_level(logging.INFO)
    credentials = SlackCredentials(BOT_TOKEN, SIGNING_SECRET, api_url=fake_slack.api_url)
    seen: list[str] = []

    def unhandled(signum, frame):  # what runs if serve_slack left SIGTERM to the default
        raise RuntimeError("serve_slack did not handle SIGTERM")

    def probe_then_terminate() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not seen:
            for record in list(caplog.records):
                if "listening for Slack on http://" in record.getMessage():
                    url = record.getMessage().split(" on ", 1)[1]
                    try:
                        with urllib.request.urlopen(url.replace("/slack/events", "/healthz"), timeout=5) as r:
                            seen.append(url if r.read() == b"ok" else "")
                    except OSError:
                        seen.append("")
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)  # always: never leave the test waiting forever

    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        threading.Thread(target=probe_then_terminate, daemon=True).start()
        serve_slack(core, http=True, port=0, credentials=credentials)  # returns: no exception
        assert signal.getsignal(signal.SIGTERM) is unhandled  # the process's own handler is back
    finally:
        signal.signal(signal.SIGTERM, previous)
    [url] = seen
    address = urlsplit(url)
    assert address.hostname == "127.0.0.1" and address.port  # loopback, and the port really bound
    with pytest.raises(OSError):  # cleaned up: nothing listens there any more
        socket.create_connection((address.hostname, address.port), timeout=2).close()
    assert "stopped (SIGTERM)" in caplog.text
    assert_no_traceback(caplog)


def test_archivist_serve_slack_exits_0_on_sigterm(tmp_path, write_config) -> None:
    """The real command, as `docker stop` ends it: exit 0, no traceback, so exit hooks ran."""
    (tmp_path / "kb").mkdir()
    env = {
        **os.environ,
        "ARCHIVIST_CONFIG": str(write_config()),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": "http://127.0.0.1:1/api/",  # never called: no request comes in
    }
    env.pop("REDIS_URL", None)
    archivist = [sys.executable, "-c", "from bot.cli import main; main()"]
    command = [*archivist, "serve", "slack", "--http", "--port", "0"]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in server.stderr:  # wait until it listens
            lines.append(line)
            if "listening for Slack on" in line:
                break
        assert lines and "on http://127.0.0.1:" in lines[-1], "".join(lines)
        server.send_signal(signal.SIGTERM)
        _, rest = server.communicate(timeout=60)
    finally:
        server.kill()
    stderr = "".join(lines) + rest
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "stopped (SIGTERM)" in stderr
