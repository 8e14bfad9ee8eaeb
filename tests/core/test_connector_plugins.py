"""Connector types are plugins: a package installed beside Archivist adds one, no change to Archivist.

The plugin here is what ``pip install`` leaves behind: a module and a ``*.dist-info`` folder
whose ``entry_points.txt`` declares the type under ``archivist.connectors``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import ConnectorSettings, load_settings
from core.sync.registry import ENTRY_POINT_GROUP, build_connector, connector_types

ARCHIVIST = [sys.executable, "-c", "from bot.cli import main; main()"]

PLUGIN_MODULE = '''
"""A connector that lives outside Archivist: it reads notes from its own config table."""

from __future__ import annotations

from core.documents import Acl, Document


class NotesConnector:
    kind = "notes"

    def __init__(self, name, notes, acl):
        self.name = name
        self.notes = notes
        self.acl = acl

    @classmethod
    def from_settings(cls, name, settings, *, data_dir):
        options = settings.options({"notes"})
        notes = options.get("notes")
        if not isinstance(notes, list) or not notes:
            raise ValueError("notes: give a list of at least one note")
        return cls(name, [str(note) for note in notes], Acl(settings.public, frozenset(settings.principals)))

    def describe(self):
        return f"{len(self.notes)} notes from the config"

    def load_all(self):
        yield [
            Document(id=f"note-{i}", source=self.name, title=f"Note {i}", text=text, acl=self.acl)
            for i, text in enumerate(self.notes)
        ]
'''


@pytest.fixture
def plugin_root(tmp_path: Path) -> Path:
    """A folder holding an installed plugin distribution, ready for ``sys.path``."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "archivist_notes.py").write_text(PLUGIN_MODULE, encoding="utf-8")
    dist_info = root / "archivist_notes-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: archivist-notes\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nnotes = archivist_notes:NotesConnector\n", encoding="utf-8"
    )
    return root


def test_builtin_types_are_entry_points() -> None:
    types = connector_types()
    expected = {
        "filesystem",
        "web",
        "git",
        "github",
        "google_drive",
        "slack_channels",
        "confluence",
        "notion",
    }
    assert expected <= set(types)
    assert types["filesystem"].value == "connectors.filesystem:FilesystemConnector"


def test_a_plugin_type_is_synced_and_listed_by_the_cli(tmp_path: Path, plugin_root: Path) -> None:
    config = tmp_path / "archivist.toml"
    config.write_text(
        textwrap.dedent(
            """
            data_dir = "data"

            [connectors.team_notes]
            type = "notes"
            public = true
            notes = [
                "The office closes at six on Fridays.",
                "Expense reports are due on the fifth of each month.",
            ]
            """
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "ARCHIVIST_CONFIG": str(config)}
    env.pop("REDIS_URL", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_root), env.get("PYTHONPATH")]))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*ARCHIVIST, *args], capture_output=True, text=True, env=env, timeout=600, check=False
        )

    synced = run("sync")
    assert synced.returncode == 0, synced.stderr
    assert "team_notes:" in synced.stdout and "2 added" in synced.stdout, synced.stdout

    listed = run("sources")
    assert listed.returncode == 0, listed.stderr
    assert "team_notes" in listed.stdout and "notes" in listed.stdout
    assert "2 chunks" in listed.stdout or " 2 " in listed.stdout, listed.stdout


def test_an_unknown_type_names_every_known_type_plugins_included(
    tmp_path: Path, plugin_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(plugin_root))
    config = tmp_path / "archivist.toml"
    config.write_text("[connectors.wiki]\ntype = 'sharepoint'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_settings(config, environ={})
    message = str(error.value)
    assert "connectors.wiki.type" in message and "'sharepoint'" in message
    known = message.split("known: ", 1)[1]
    names = [name.strip(" )'\"") for name in known.split(",")]
    assert "notes" in names and "filesystem" in names
    assert names[: len(names)] == sorted(names[: len(names)])


def test_a_plugin_rejecting_its_options_is_a_config_error(
    tmp_path: Path, plugin_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(plugin_root))
    settings = ConnectorSettings(type="notes", notes=[])
    with pytest.raises(ConfigError, match=r"connectors\.team_notes: notes: give a list"):
        build_connector("team_notes", settings, tmp_path)


def test_a_type_is_imported_only_when_used(plugin_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_root))
    monkeypatch.delitem(sys.modules, "archivist_notes", raising=False)
    ConnectorSettings(type="notes", notes=["x"])
    assert "archivist_notes" not in sys.modules


def test_core_never_imports_connectors() -> None:
    core = Path(__file__).resolve().parents[2] / "core"
    offenders = [
        f"{path.relative_to(core)}:{number}"
        for path in core.rglob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if line.strip().startswith(("from connectors", "import connectors"))
    ]
    assert offenders == []
