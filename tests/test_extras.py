"""Without an optional extra, its frontend or backend says in one line which extra to install."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.extras import MissingExtra, is_missing, require

ROOT = Path(__file__).resolve().parent.parent


def _uninstall(monkeypatch: pytest.MonkeyPatch, *roots: str) -> None:
    """Make ``roots`` (and their submodules) unimportable, as if the packages were not installed."""
    for name in list(sys.modules):
        if any(name == root or name.startswith(root + ".") for root in roots):
            monkeypatch.setitem(sys.modules, name, None)
    for root in roots:
        monkeypatch.setitem(sys.modules, root, None)


def _reimport(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.delitem(sys.modules, module, raising=False)  # restored afterwards
    importlib.import_module(module)


def _assert_one_line(error: ConfigError, extra: str, what: str) -> None:
    message = str(error)
    assert message == f"install archivist[{extra}] to use {what}: pip install 'archivist[{extra}]'"
    assert "\n" not in message


@pytest.mark.parametrize(
    ("module", "roots", "extra", "what"),
    [
        ("bot.discord.client", ("discord",), "discord", "Discord"),
        ("bot.slack.app", ("slack_bolt", "slack_sdk"), "slack", "Slack"),
        ("core.retrieval.store.weaviate_connect", ("weaviate",), "weaviate", "the Weaviate store"),
        ("core.retrieval.store.weaviate_store", ("weaviate",), "weaviate", "the Weaviate store"),
    ],
)
def test_a_frontend_or_backend_without_its_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, roots: tuple[str, ...], extra: str, what: str
) -> None:
    _uninstall(monkeypatch, *roots)
    with pytest.raises(MissingExtra) as caught:
        _reimport(monkeypatch, module)
    assert isinstance(caught.value, ConfigError)  # the CLI's error boundary prints it as one line
    _assert_one_line(caught.value, extra, what)


def test_local_fine_tuning_without_peft_names_the_finetune_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from core.finetune.local_lora import train_lora

    _uninstall(monkeypatch, "peft")
    with pytest.raises(MissingExtra) as caught:
        train_lora("model", None, tmp_path, None, print)  # type: ignore[arg-type]
    _assert_one_line(caught.value, "finetune", "local fine-tuning")


def test_require_imports_what_is_there_and_names_the_extra_for_what_is_not() -> None:
    assert require("json", "slack").dumps([]) == "[]"
    with pytest.raises(MissingExtra, match=r"archivist\[discord\]"):
        require("archivist_no_such_package", "discord")


def test_a_broken_install_is_not_mistaken_for_a_missing_extra() -> None:
    other = ModuleNotFoundError("No module named 'yarl'", name="yarl")
    assert not is_missing(other, "discord")
    assert is_missing(ModuleNotFoundError("x", name="discord.ext"), "discord")
    assert not is_missing(ImportError("cannot import name 'Client'", name="discord"), "discord")


def test_the_cli_says_which_extra_to_install_in_one_line(tmp_path: Path) -> None:
    hide = "import sys; sys.modules['discord'] = None; sys.argv = ['archivist', 'serve', 'discord']"
    result = subprocess.run(
        [sys.executable, "-c", f"{hide}; from bot.cli import main; main()"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert (
        result.stderr.strip()
        == "error: install archivist[discord] to use Discord: pip install 'archivist[discord]'"
    )


def test_eval_reports_need_matplotlib_only_for_their_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    """matplotlib comes with [finetune]: without it the report module loads (the CLI prints its
    table) and a chart says which extra draws it; write_report then leaves the charts out."""
    _uninstall(monkeypatch, "matplotlib")
    _reimport(monkeypatch, "core.evaluation.report")
    report = sys.modules["core.evaluation.report"]
    with pytest.raises(MissingExtra) as caught:
        report._figure()
    _assert_one_line(caught.value, "finetune", "local fine-tuning")
