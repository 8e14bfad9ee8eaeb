"""The Google Drive connector against a local server speaking the Drive API v3."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.api_client import ApiError
from connectors.google_drive import GoogleDriveConnector
from core.errors import ConfigError, SourceError
from core.settings import ConnectorSettings
from core.sync.connector import PollsChanges
from core.sync.registry import build_connector
from tests.connectors.saas_helpers import Sleeps, drain
from tests.fakes.google_directory_server import FakeDirectory
from tests.fakes.google_drive_server import (
    DIRECTORY_SCOPE,
    DOC,
    FOLDER,
    SHEET,
    SLIDES,
    TOKEN,
    FakeDrive,
    google_error,
)

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "handbook"
PDF = (SAMPLES / "sales-support" / "refund-policy.pdf").read_bytes()
DOCX = (SAMPLES / "people" / "parental-leave.docx").read_bytes()
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ANYONE = [{"id": "anyoneWithLink", "type": "anyone", "role": "reader"}]


@pytest.fixture
def drive(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDrive]:
    monkeypatch.setenv("GOOGLE_DRIVE_TOKEN", TOKEN)
    fake = FakeDrive().start()
    fake.add(
        "VPN guide",
        DOC,
        "<html><body><h1>VPN guide</h1><h2>Ports</h2><p>Connect on port 8443 with the axolotl client.</p></body></html>",
        permissions=ANYONE,
        file_id="docVPN",
    )
    fake.add(
        "Budget 2024",
        SHEET,
        "Team,Budget\nEngineering,1500\nSales,900\n",
        permissions=ANYONE,
        file_id="sheetBudget",
    )
    fake.add(
        "All hands", SLIDES, "Quarterly all hands\nWe grew 20%.", permissions=ANYONE, file_id="slidesAllHands"
    )
    fake.add("refund-policy.pdf", "application/pdf", PDF, permissions=ANYONE, file_id="pdfRefund")
    fake.add("Parental leave.docx", DOCX_TYPE, DOCX, permissions=ANYONE, file_id="docxLeave")
    fake.add(
        "notes.md",
        "text/markdown",
        "# Notes\n\nThe wifi rotates on Mondays.",
        permissions=ANYONE,
        file_id="mdNotes",
    )
    fake.add("photo.jpg", "image/jpeg", b"\xff\xd8\xff", permissions=ANYONE, file_id="jpgPhoto")
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def make(drive: FakeDrive, tmp_path: Path) -> Callable[..., GoogleDriveConnector]:
    def build(**options: object) -> GoogleDriveConnector:
        settings = ConnectorSettings(type="google_drive", api_url=drive.base_url, **options)
        connector = build_connector("drive", settings, tmp_path)
        assert isinstance(connector, GoogleDriveConnector) and isinstance(connector, PollsChanges)
        connector.sleep = Sleeps()
        return connector

    return build


READABLE = {"docVPN", "sheetBudget", "slidesAllHands", "pdfRefund", "docxLeave", "mdNotes"}


def test_full_poll_reads_every_supported_type(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector]
) -> None:
    polled = drain(make().poll(None))
    assert set(polled.documents) == READABLE and not polled.failures  # the JPEG is skipped
    vpn = polled.documents["docVPN"]
    assert vpn.title == "VPN guide" and "## Ports" in vpn.text and "axolotl" in vpn.text  # headings survive
    assert vpn.url == "https://docs.google.com/document/d/docVPN/edit"
    assert vpn.version == drive.files["docVPN"].modified
    assert "| Engineering | 1500 |" in polled.documents["sheetBudget"].text
    assert "We grew 20%." in polled.documents["slidesAllHands"].text
    assert polled.documents["pdfRefund"].title == "refund-policy" and polled.documents["pdfRefund"].text
    assert polled.documents["docxLeave"].title == "Parental leave" and polled.documents["docxLeave"].text
    assert "Mondays" in polled.documents["mdNotes"].text
    listing = [r for r in drive.requests if r.path == "/files"][0]
    assert "trashed = false" in listing.query["q"]
    assert listing.query["corpora"] == "allDrives"  # My Drive and every shared drive
    assert listing.query["includeItemsFromAllDrives"] == listing.query["supportsAllDrives"] == "true"
    assert "permissions" in listing.query["fields"]


def test_pagination_and_incremental_poll(drive: FakeDrive, make: Callable[..., GoogleDriveConnector]) -> None:
    for n in range(250):  # more than two pages of 100
        drive.add(f"page-{n}.md", "text/markdown", f"# Page {n}\n\nText {n}.", permissions=ANYONE)
    connector = make()
    first = drain(connector.poll(None))
    assert len(first.documents) == 256 and len(first.ids_in_order) == 256

    drive.edit("mdNotes", "# Notes\n\nThe wifi now rotates on Fridays.")
    drive.add("new.md", "text/markdown", "# New\n\nBrand new.", permissions=ANYONE, file_id="mdNew")
    drive.requests.clear()
    second = drain(connector.poll(first.cursor))
    assert set(second.documents) == {"mdNotes", "mdNew"}
    assert "Fridays" in second.documents["mdNotes"].text
    asked = [r.query["q"] for r in drive.requests if r.path == "/files"]
    assert asked and all("modifiedTime >= " in q for q in asked)

    assert not drain(connector.poll(second.cursor)).documents


def test_files_sharing_a_modified_time_survive_a_kill_midway(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector]
) -> None:
    same = drive.tick()
    for n in range(70):
        drive.add(
            f"bulk-{n}.md",
            "text/markdown",
            f"# Bulk {n}\n\nMoved in one go.",
            permissions=ANYONE,
            modified=same,
        )
    connector = make()
    done: list[str] = []
    cursor = None
    for _ in range(20):
        part = drain(connector.poll(cursor), batches=1)
        if not part.cursors:
            break
        done += part.ids_in_order
        cursor = part.cursor
    assert len(done) == len(set(done)) == 76


def test_rate_limits_are_retried(drive: FakeDrive, make: Callable[..., GoogleDriveConnector]) -> None:
    connector = make()
    drive.rate_limit("/files/docVPN/export", status=429, headers={"Retry-After": "3"})
    drive.rate_limit("/files", status=403, headers={})  # Google: 403 rateLimitExceeded, no Retry-After
    polled = drain(connector.poll(None))
    assert set(polled.documents) == READABLE
    assert 3.0 in connector.sleep and len(connector.sleep) == 2


def test_expired_token_names_the_variable(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_DRIVE_TOKEN", "ya29.expired")
    with pytest.raises(ApiError, match="GOOGLE_DRIVE_TOKEN .*expire") as caught:
        drain(make().poll(None))
    assert caught.value.status == 401
    monkeypatch.delenv("GOOGLE_DRIVE_TOKEN")
    with pytest.raises(SourceError, match="set GOOGLE_DRIVE_CREDENTIALS .* or GOOGLE_DRIVE_TOKEN"):
        list(make().list_ids())


def test_trashed_and_deleted_files_leave_list_ids(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector]
) -> None:
    connector = make()
    assert set(connector.list_ids()) == READABLE
    drive.files["mdNotes"].trashed = True
    del drive.files["pdfRefund"]
    assert set(connector.list_ids()) == READABLE - {"mdNotes", "pdfRefund"}
    ids_request = [r for r in drive.requests if r.path == "/files"][-1]
    assert "permissions" not in ids_request.query["fields"]  # ids only, no bodies or permissions


def test_one_unreadable_file_is_a_failure_and_the_batch_goes_on(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector]
) -> None:
    drive.files["docVPN"].too_large_to_export = True
    drive.add(
        "broken.pdf",
        "application/pdf",
        b"%PDF-1.4 this is not a real pdf",
        permissions=ANYONE,
        file_id="pdfBroken",
    )
    connector = make()
    first = drain(connector.poll(None))
    assert set(first.failures) == {"docVPN", "pdfBroken"}
    assert "10 MB" in first.failures["docVPN"].reason
    assert set(first.documents) == READABLE - {"docVPN"}
    assert sorted(first.state["retry"]) == ["docVPN", "pdfBroken"]

    drive.files["docVPN"].too_large_to_export = False
    second = drain(connector.poll(first.cursor))  # retried although unchanged
    assert set(second.documents) == {"docVPN"} and set(second.failures) == {"pdfBroken"}


def test_acl_comes_from_drive_permissions(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector]
) -> None:
    drive.files.clear()
    drive.add(
        "Team plan.md",
        "text/markdown",
        "# Plan\n\nSecret.",
        file_id="mdTeam",
        permissions=[
            {"id": "1", "type": "user", "role": "owner", "emailAddress": "Ann@Example.com"},
            {"id": "2", "type": "group", "role": "reader", "emailAddress": "eng@example.com"},
            {"id": "3", "type": "domain", "role": "reader", "domain": "example.com"},
            {
                "id": "4",
                "type": "user",
                "role": "reader",
                "deleted": True,
                "emailAddress": "gone@example.com",
            },
        ],
    )
    drive.add(
        "Unknown.md", "text/markdown", "# Unknown\n\nNobody listed.", file_id="mdUnknown", permissions=[]
    )
    drive.add(
        "Shared drive page.md",
        "text/markdown",
        "# Shared\n\nIn a shared drive.",
        file_id="mdShared",
        shared_drive="0AsharedDrive",
        permissions=[{"id": "9", "type": "group", "role": "organizer", "emailAddress": "ops@example.com"}],
    )
    drive.add("Public.md", "text/markdown", "# Public\n\nEveryone.", file_id="mdPublic", permissions=ANYONE)
    polled = drain(make(principals=["slack:channel:C0OPS"]).poll(None))
    team = polled.documents["mdTeam"].acl
    assert not team.public
    assert team.principals == {
        "google:user:ann@example.com",
        "google:group:eng@example.com",
        "google:domain:example.com",
        "slack:channel:C0OPS",
    }
    assert polled.documents["mdUnknown"].acl.principals == {"slack:channel:C0OPS"}
    assert not polled.documents["mdUnknown"].acl.public
    shared = polled.documents["mdShared"].acl  # read through permissions.list
    assert shared.principals == {"google:group:ops@example.com", "slack:channel:C0OPS"}
    assert "/files/mdShared/permissions" in drive.paths()
    assert polled.documents["mdPublic"].acl.public


def test_unreadable_permissions_mean_private(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector]
) -> None:
    drive.files.clear()
    drive.add(
        "Shared.md",
        "text/markdown",
        "# S\n\nText.",
        file_id="mdShared",
        shared_drive="0Ad",
        permissions=ANYONE,
    )
    drive.fail(
        "/files/mdShared/permissions",
        403,
        body=google_error(403, "Insufficient permissions", "insufficientFilePermissions")[2],
    )
    polled = drain(make().poll(None))
    acl = polled.documents["mdShared"].acl
    assert not acl.public and not acl.principals


def test_folder_id_reads_the_folder_tree_only(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector]
) -> None:
    drive.add("Handbook", FOLDER, file_id="folderHandbook")
    drive.add("People", FOLDER, parents=["folderHandbook"], file_id="folderPeople")
    drive.add(
        "Leave.md",
        "text/markdown",
        "# Leave\n\n25 days.",
        parents=["folderPeople"],
        permissions=ANYONE,
        file_id="mdLeave",
    )
    drive.add(
        "Intro.md",
        "text/markdown",
        "# Intro\n\nHi.",
        parents=["folderHandbook"],
        permissions=ANYONE,
        file_id="mdIntro",
    )
    connector = make(folder_id="folderHandbook")
    assert set(drain(connector.poll(None)).documents) == {"mdLeave", "mdIntro"}
    assert set(connector.list_ids()) == {"mdLeave", "mdIntro"}
    drive.files["mdLeave"].parents = ["root"]  # moved out of the folder
    assert set(connector.list_ids()) == {"mdIntro"}

    with pytest.raises(SourceError, match="folder nope does not exist"):
        drain(make(folder_id="nope").poll(None))
    with pytest.raises(SourceError, match="is not a folder"):
        drain(make(folder_id="mdNotes").poll(None))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"folder_id": "'; trashed = true"}, "folder_id"),
        ({"drive_id": ""}, "drive_id"),
        ({"api_url": "drive.example"}, "api_url"),
        ({"token_env": "1BAD"}, "token_env"),
        ({"shared": True}, "unknown option"),
    ],
)
def test_bad_options_are_config_errors(options: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        build_connector("drive", ConnectorSettings(type="google_drive", **options), tmp_path)


# -- what the real service adds: shared drives, ignored ordering, overloads, renewable credentials --


def test_shared_drive_files_are_listed_with_the_rest(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector]
) -> None:
    drive.add("Ops runbook.md", "text/markdown", "# Ops\n\nRestart it.", file_id="mdOps",
              shared_drive="0AopsDrive", permissions=ANYONE)  # fmt: skip
    assert set(drain(make().poll(None)).documents) == READABLE | {"mdOps"}
    assert "mdOps" in set(make().list_ids())
    one_drive = drain(make(drive_id="0AopsDrive").poll(None))
    assert set(one_drive.documents) == {"mdOps"}


def test_an_ignored_order_by_loses_no_file(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector]
) -> None:
    pages = [  # more than a page, listed in Drive's own order
        drive.add(f"page-{n:03d}.md", "text/markdown", f"# Page {n}\n\nText {n}.", permissions=ANYONE)
        for n in range(150)
    ]
    drive.order_by_ignored = True
    connector = make()
    first = drain(connector.poll(None))
    assert len(first.documents) == 156

    drive.edit(pages[3].id, "# Edited\n\nNow about otters.")
    drive.edit("mdNotes", "# Notes\n\nThe wifi now rotates on Fridays.")
    second = drain(connector.poll(first.cursor))
    assert set(second.documents) == {pages[3].id, "mdNotes"}


def test_server_errors_are_retried(drive: FakeDrive, make: Callable[..., GoogleDriveConnector]) -> None:
    connector = make()
    drive.fail("/files", 502, times=1)
    drive.fail("/files/docVPN/export", 500, times=1)
    drive.fail("/files/pdfRefund", 504, times=1)
    assert set(drain(connector.poll(None)).documents) == READABLE
    assert len(connector.sleep) == 3


def test_an_outage_stops_the_sync_as_transient_and_prunes_nothing(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector]
) -> None:
    drive.fail("/files", 503)
    with pytest.raises(ApiError) as stopped:
        list(make().list_ids())
    assert stopped.value.transient and "HTTP 503" in str(stopped.value)


def _service_account(drive: FakeDrive, tmp_path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = "archivist@acme-project.iam.gserviceaccount.com"
    drive.service_accounts[email] = key.public_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "acme-project",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": email,
        "client_id": "1234",
        "token_uri": f"{drive.base_url}/token",
    }
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(info))
    return path


def test_a_service_account_key_reads_drive(
    drive: FakeDrive,
    make: Callable[..., GoogleDriveConnector],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GOOGLE_DRIVE_TOKEN")
    monkeypatch.setenv("GOOGLE_DRIVE_CREDENTIALS", str(_service_account(drive, tmp_path)))
    assert set(drain(make(delegate="ada@acme.example").poll(None)).documents) == READABLE
    assert drive.token_grants[0]["who"].endswith("as ada@acme.example")  # domain-wide delegation
    assert len(drive.token_grants) == 1  # one token for the whole sync


def test_a_refresh_token_renews_an_expired_access_token(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_DRIVE_TOKEN")
    drive.refresh_tokens["1//refresh"] = ("client.apps.googleusercontent.com", "shh")
    info = {
        "type": "authorized_user",
        "client_id": "client.apps.googleusercontent.com",
        "client_secret": "shh",
        "refresh_token": "1//refresh",
        "token_uri": f"{drive.base_url}/token",
    }
    monkeypatch.setenv("GOOGLE_DRIVE_CREDENTIALS", json.dumps(info))
    connector = make()
    first = drain(connector.poll(None))
    drive.expire_tokens()  # an hour later: the old access token answers 401
    drive.edit("mdNotes", "# Notes\n\nFridays now.")
    second = drain(connector.poll(first.cursor))
    assert set(second.documents) == {"mdNotes"}
    assert len(drive.token_grants) == 2


def test_refused_credentials_say_which_variable(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector], monkeypatch: pytest.MonkeyPatch
) -> None:
    info = {"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "revoked",
            "token_uri": f"{drive.base_url}/token"}  # fmt: skip
    monkeypatch.setenv("GOOGLE_DRIVE_CREDENTIALS", json.dumps(info))
    with pytest.raises(SourceError, match="Google refused the credentials in GOOGLE_DRIVE_CREDENTIALS"):
        drain(make().poll(None))
    monkeypatch.setenv("GOOGLE_DRIVE_CREDENTIALS", '{"type": "external_account"}')
    with pytest.raises(SourceError, match="service account key"):
        drain(make().poll(None))


def test_timeouts_on_a_big_page_of_files_shrink_it_and_the_listing_goes_on(
    drive: FakeDrive, make: Callable[..., GoogleDriveConnector]
) -> None:
    for n in range(30):
        text = f"# Note {n}\n\nThe wombat count is {n}."
        drive.add(f"Note {n}.md", "text/markdown", text, permissions=ANYONE)
    drive.times_out_above = 20
    polled = drain(make().poll(None))

    assert {f"Note {n}" for n in range(30)} <= {d.title for d in polled.documents.values()}
    sizes = [int(r.query["pageSize"]) for r in drive.requests if r.path == "/files" and "permissions" in r.query.get("fields", "")]  # fmt: skip
    assert sizes[0] == 100 and sizes[-1] <= 20 and max(sizes[sizes.index(min(sizes)) :]) <= 20


def test_groups_come_from_the_directory_with_the_service_account_acting_as_an_admin(
    drive: FakeDrive,
    make: Callable[..., GoogleDriveConnector],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("GOOGLE_DRIVE_TOKEN")
    monkeypatch.setenv("GOOGLE_DRIVE_CREDENTIALS", str(_service_account(drive, tmp_path)))
    directory = FakeDirectory(issuer=drive)
    directory.start()
    try:
        directory.add_group("eng@acme.example", "ada@acme.example")
        connector = make(
            delegate="ada@acme.example",
            directory_url=directory.directory_url,
            directory_delegate="it@acme.example",
        )
        ada = frozenset({"google:user:ada@acme.example", "email:ada@acme.example"})

        # The Admin console has not granted the directory scope: Google issues no token for it.
        with caplog.at_level("WARNING"):
            assert connector.memberships(ada) == frozenset()
            assert connector.memberships(ada) == frozenset()
        assert sum("admin.directory.group.readonly" in r.getMessage() for r in caplog.records) == 1
        assert set(drain(connector.poll(None)).documents) == READABLE  # Drive itself is unaffected

        drive.delegated_scopes.add(DIRECTORY_SCOPE)
        assert connector.memberships(ada) == {"google:group:eng@acme.example"}
        assert drive.token_grants[-1]["who"].endswith("as it@acme.example")  # the administrator
        assert connector.memberships(frozenset({"email:ada@acme.example"})) == frozenset()  # no Google user
    finally:
        directory.stop()
