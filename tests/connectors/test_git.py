"""The git connector against real repositories made with the git command line, synced for real."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.git import GitConnector
from core.app import App
from core.documents import Acl, Document, LoadFailure
from core.errors import ConfigError, SourceError
from core.retrieval.store.base import AccessFilter, SearchQuery
from core.settings import load_settings
from tests.conftest import BASE_CONFIG, cached_app, stop_embedded_redis

URL_TEMPLATE = "https://git.example/org/repo/blob/{branch}/{path}"

HANDBOOK = {
    "README.md": "# Team handbook\n\nStart here: the pages below describe how the platform team works.\n",
    "docs/deploys.md": "# Deploys\n\nWe deploy on Tuesdays and Thursdays after the 10:00 stand-up.\n",
    "docs/oncall.md": "# On-call\n\nThe on-call rotation changes every Monday at 09:00 CET.\n",
    "docs/glossary.txt": "Glossary\n\nSLO: service level objective, our promise of availability.\n",
    "src/main.py": "print('code is not a document')\n",
    "assets/logo.png": "\x89PNG not really",
}


def git(repo: Path, *args: str, when: str = "2024-05-01T12:00:00Z") -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=Tester", "-c", "user.email=tester@example.com", *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return done.stdout


def commit(
    repo: Path,
    files: dict[str, str | bytes] | None = None,
    remove: tuple[str, ...] = (),
    message: str = "change",
    when: str = "2024-05-01T12:00:00Z",
) -> None:
    for relative, content in (files or {}).items():
        path = repo / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    if remove:
        git(repo, "rm", "-q", *remove)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message, when=when)


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "handbook", files: dict[str, str | bytes] | None = None) -> Path:
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        commit(repo, HANDBOOK if files is None else files, message="first")
        return repo

    return make


@pytest.fixture
def make_app(tmp_path: Path, write_config, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., App]]:
    """An App whose config has a ``[connectors.code]`` git table with the given options.

    A second call rewrites the config of the same App, as an admin editing the file
    would: the index, Redis and embedder stay (and one embedded Redis per test is quicker).
    """
    monkeypatch.setenv("ARCHIVIST_DATA_DIR", str(tmp_path / "data"))
    built: list[App] = []

    def make(repo: Path | str, extra: str = "", public: bool = True) -> App:
        table = f'\n[connectors.code]\ntype = "git"\nrepo = "{repo}"\npublic = {str(public).lower()}\n{extra}'
        settings = load_settings(write_config(BASE_CONFIG + table), environ={})
        if built:
            built[0].settings = settings
            return built[0]
        application = cached_app(settings)
        built.append(application)
        return application

    yield make
    for application in built:
        stop_embedded_redis(application)


def sync(app: App):
    return app.sync_engine.sync(app.connector("code"))


def indexed(app: App) -> set[str]:
    return set(app.store.indexed_documents("code"))


def search(app: App, text: str, limit: int = 3):
    vector = app.embedder.embed_query(text)
    return app.store.search(SearchQuery(text, vector, limit=limit), AccessFilter())


MARKDOWN_AND_TEXT = {"README.md", "docs/deploys.md", "docs/oncall.md", "docs/glossary.txt"}


def test_first_sync_indexes_the_documents_with_urls(make_repo, make_app) -> None:
    repo = make_repo()
    app = make_app(repo, f'url_template = "{URL_TEMPLATE}"')
    report = sync(app)
    assert (report.added, report.failed) == (4, 0), report.failures
    assert indexed(app) == MARKDOWN_AND_TEXT  # code and images are not documents
    hit = search(app, "which days do we deploy")[0]
    assert hit.chunk.document_id == "docs/deploys.md"
    assert hit.chunk.url == "https://git.example/org/repo/blob/main/docs/deploys.md"
    assert hit.chunk.path == "docs/deploys.md"
    assert hit.chunk.title == "Deploys"
    again = sync(app)
    assert (again.added, again.updated, again.unchanged, again.deleted) == (0, 0, 4, 0)


def test_an_edit_rereads_only_that_file(make_repo, make_app) -> None:
    repo = make_repo()
    app = make_app(repo)
    sync(app)
    commit(repo, {"docs/oncall.md": "# On-call\n\nThe rotation now changes every Wednesday at 14:00 CET.\n"})
    report = sync(app)
    assert (report.added, report.updated, report.unchanged, report.deleted) == (0, 1, 3, 0)
    hit = search(app, "when does the on-call rotation change")[0]
    assert hit.chunk.document_id == "docs/oncall.md" and "Wednesday" in hit.chunk.text
    assert app.store.indexed_documents("code")["docs/oncall.md"].chunks == 1


def test_a_rename_moves_the_document_and_a_deletion_is_pruned(make_repo, make_app) -> None:
    repo = make_repo()
    app = make_app(repo)
    sync(app)
    git(repo, "mv", "docs/deploys.md", "docs/releases.md")
    commit(repo, remove=("docs/glossary.txt",), message="rename and delete")
    report = sync(app)
    assert (report.added, report.updated, report.deleted, report.unchanged) == (1, 0, 2, 2)
    assert indexed(app) == {"README.md", "docs/oncall.md", "docs/releases.md"}
    hits = search(app, "which days do we deploy", 10)
    assert hits[0].chunk.document_id == "docs/releases.md"
    assert all(hit.chunk.document_id != "docs/deploys.md" for hit in hits)


def test_include_and_exclude_globs(make_repo, make_app) -> None:
    repo = make_repo()
    commit(
        repo, {"docs/drafts/idea.md": "# Idea\n\nA half-baked idea.\n", ".github/PULL_REQUEST.md": "# PR\n"}
    )
    app = make_app(repo, 'include = ["docs/**"]\nexclude = ["docs/drafts/*", "**/*.txt"]')
    report = sync(app)
    assert report.failed == 0
    assert indexed(app) == {"docs/deploys.md", "docs/oncall.md"}
    default = make_app(repo)
    sync(default)
    # Defaults: every supported format anywhere, except hidden folders such as .github/.
    assert indexed(default) == MARKDOWN_AND_TEXT | {"docs/drafts/idea.md"}


def test_the_branch_option_reads_that_branch(make_repo, make_app) -> None:
    repo = make_repo()
    git(repo, "checkout", "-q", "-b", "release/2.0")
    commit(repo, {"docs/release-notes.md": "# Release notes\n\nVersion 2.0 drops support for Python 3.9.\n"})
    git(repo, "checkout", "-q", "main")
    on_main = make_app(repo)
    sync(on_main)
    assert "docs/release-notes.md" not in indexed(on_main)  # the default is the checked-out HEAD
    app = make_app(repo, f'branch = "release/2.0"\nurl_template = "{URL_TEMPLATE}"')
    report = sync(app)  # the same source and index: files equal on both branches are not re-read
    assert (report.added, report.unchanged) == (1, 4) and "docs/release-notes.md" in indexed(app)
    hit = search(app, "which Python version support is dropped")[0]
    assert hit.chunk.url == "https://git.example/org/repo/blob/release/2.0/docs/release-notes.md"


def test_a_clone_url_is_cloned_and_fetched_on_each_sync(make_repo, make_app, tmp_path: Path) -> None:
    origin = make_repo("origin")
    app = make_app(origin.as_uri(), f'url_template = "{URL_TEMPLATE}"')
    first = sync(app)
    assert first.added == 4 and first.failed == 0
    clone = tmp_path / "data" / "git" / "code"
    assert git(clone, "rev-parse", "--is-bare-repository").strip() == "true"
    commit(origin, {"docs/parking.md": "# Parking\n\nThe garage code is 7781; bikes go to level -1.\n"})
    report = sync(app)
    assert (report.added, report.unchanged) == (1, 4)
    hit = search(app, "garage code for parking")[0]
    assert hit.chunk.document_id == "docs/parking.md"
    assert hit.chunk.url == "https://git.example/org/repo/blob/main/docs/parking.md"


def test_a_clone_url_with_a_branch_and_cache_dir(make_repo, make_app, tmp_path: Path) -> None:
    origin = make_repo("origin")
    git(origin, "branch", "stable")
    app = make_app(origin.as_uri(), f'branch = "stable"\ncache_dir = "{tmp_path / "clones" / "code"}"')
    assert sync(app).added == 4
    assert (tmp_path / "clones" / "code" / "HEAD").exists()
    git(origin, "checkout", "-q", "stable")
    commit(origin, {"docs/stable-only.md": "# Stable\n\nOnly on the stable branch.\n"})
    git(origin, "checkout", "-q", "main")
    commit(origin, {"docs/main-only.md": "# Main\n\nOnly on main.\n"})
    sync(app)
    assert "docs/stable-only.md" in indexed(app) and "docs/main-only.md" not in indexed(app)


def test_a_missing_repository_fails_the_source_and_deletes_nothing(make_repo, make_app, tmp_path) -> None:
    repo = make_repo()
    app = make_app(repo)
    sync(app)
    before = app.store.count("code")
    repo.rename(tmp_path / "moved")
    with pytest.raises(SourceError, match="does not exist"):
        sync(app)
    assert app.store.count("code") == before
    assert "does not exist" in app.sync_status.last("code").error


def test_a_missing_branch_fails_the_source_and_deletes_nothing(make_repo, make_app) -> None:
    repo = make_repo()
    app = make_app(repo)
    sync(app)
    before = app.store.count("code")
    wrong = make_app(repo, 'branch = "no-such-branch"')
    with pytest.raises(SourceError, match="branch 'no-such-branch' does not exist"):
        sync(wrong)
    assert wrong.store.count("code") == before


def test_a_missing_remote_or_remote_branch_is_a_clear_source_error(make_repo, make_app, tmp_path) -> None:
    with pytest.raises(SourceError, match="cannot clone"):
        sync(make_app((tmp_path / "nowhere").as_uri()))
    assert not (tmp_path / "data" / "git" / "code").exists()  # no half-made clone left behind
    origin = make_repo("origin")
    app = make_app(origin.as_uri())
    sync(app)
    before = app.store.count("code")
    with pytest.raises(SourceError, match="branch 'gone' does not exist"):
        sync(make_app(origin.as_uri(), 'branch = "gone"'))
    assert app.store.count("code") == before


def test_a_folder_that_is_not_a_repository_is_refused(make_repo, tmp_path) -> None:
    repo = make_repo()
    plain = tmp_path / "plain"
    plain.mkdir()
    inner = repo / "docs"
    for path, expected in ((plain, "not a git repository"), (inner, "not the top of a git repository")):
        connector = GitConnector(name="code", repo=str(path), acl=Acl())
        with pytest.raises(SourceError, match=expected):
            list(connector.list_refs())


def test_a_corrupt_pdf_is_reported_while_the_rest_syncs(make_repo, make_app) -> None:
    repo = make_repo()
    commit(repo, {"docs/scanned.pdf": b"%PDF-1.7\n garbage that is no PDF"})
    app = make_app(repo)
    report = sync(app)
    assert report.failed == 1 and report.failures[0].startswith("docs/scanned.pdf: ")
    assert report.added == 4
    assert app.sync_status.last("code").failed == 1


def test_a_committed_symlink_is_not_indexed(make_repo, make_app, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "shadow.md"
    secret.parent.mkdir()
    secret.write_text("# Shadow\n\nroot:$6$hunter2-swordfish:19000:0:99999:7:::\n")
    repo = make_repo()
    (repo / "docs" / "passwd.md").symlink_to("/etc/passwd")
    (repo / "docs" / "shadow.md").symlink_to(secret)
    commit(repo, message="links to files outside the repository")
    assert "120000" in git(repo, "ls-tree", "HEAD", "docs/passwd.md")  # committed as a symlink blob
    app = make_app(repo)
    report = sync(app)
    assert (report.added, report.failed) == (4, 0), report.failures
    assert indexed(app) == MARKDOWN_AND_TEXT
    text = "\n".join(chunk.text for chunk in app.store.chunks(AccessFilter()))
    assert "hunter2" not in text and "root:x:0:0" not in text and "/etc/passwd" not in text


def test_git_not_installed_is_a_source_error(make_repo, monkeypatch, tmp_path) -> None:
    repo = make_repo()
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(SourceError, match="git is not installed"):
        list(GitConnector(name="code", repo=str(repo), acl=Acl()).list_refs())


def test_documents_carry_version_acl_and_last_commit_time(make_repo) -> None:
    repo = make_repo()
    commit(repo, {"docs/oncall.md": "# On-call\n\nNew rota.\n"}, when="2024-06-02T08:30:00Z")
    connector = GitConnector(name="code", repo=str(repo), acl=Acl(principals=frozenset({"group:platform"})))
    refs = {ref.id: ref for ref in connector.list_refs()}
    items = {item.id: item for batch in connector.load(list(refs.values())) for item in batch}
    oncall, readme = items["docs/oncall.md"], items["README.md"]
    assert isinstance(oncall, Document) and isinstance(readme, Document)
    assert (
        oncall.version
        == refs["docs/oncall.md"].version
        == git(repo, "rev-parse", "HEAD:docs/oncall.md").strip()
    )
    assert oncall.updated_at == datetime(2024, 6, 2, 8, 30, tzinfo=UTC)
    assert readme.updated_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)  # unchanged since the first commit
    assert oncall.acl == Acl(public=False, principals=frozenset({"group:platform"}))
    assert oncall.url == ""  # no url_template, no url


def test_an_identical_copy_shares_a_blob_but_is_its_own_document(make_repo) -> None:
    repo = make_repo()
    commit(repo, {"docs/copy.md": HANDBOOK["docs/deploys.md"]})
    connector = GitConnector(name="code", repo=str(repo), acl=Acl())
    refs = {ref.id: ref.version for ref in connector.list_refs()}
    assert refs["docs/copy.md"] == refs["docs/deploys.md"]
    items = [item for batch in connector.load([r for r in connector.list_refs()]) for item in batch]
    assert not [item for item in items if isinstance(item, LoadFailure)]
    assert {item.id for item in items} >= {"docs/copy.md", "docs/deploys.md"}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("", "'repo' is required"),
        ('repo = "x"\nbranches = ["main"]', "unknown option"),
        ('repo = "x"\nurl_template = "https://x/{ref}/{path}"', "url_template"),
        ('repo = "x"\ninclude = "docs/**"\nexclude = [1]', "'exclude' must be a list"),
        ('repo = "x"\nbranch = "--upload-pack=evil"', "not a valid branch"),
    ],
)
def test_bad_options_are_config_errors(write_config, table: str, message: str) -> None:
    config = BASE_CONFIG + f'\n[connectors.code]\ntype = "git"\n{table}\n'
    app = App(load_settings(write_config(config), environ={}))
    with pytest.raises(ConfigError, match=message):
        app.connector("code")
