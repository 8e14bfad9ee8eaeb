"""`archivist identities`: who a chat user is in the sources (see core/answering/identities.py).

Slack users are matched by the email Slack confirms; Discord gives bots no email, so an admin
links a Discord user to an address (or any source principal) here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from bot.cli import context
from bot.cli.console import out
from core.answering.identities import IdentityMap
from core.errors import InputError

identities = typer.Typer(help="Link chat users to their accounts in the sources.", no_args_is_help=True)

CHAT = Annotated[str, typer.Argument(help="A chat user: slack:user:U0123 or discord:user:123456789.")]
TARGET = Annotated[
    str, typer.Argument(help="An email address, or a principal such as confluence:user:ACCOUNT_ID.")
]


def _map() -> IdentityMap:
    application = context.application()
    return IdentityMap(lambda: application.redis)


@identities.command()
def link(chat: CHAT, target: TARGET) -> None:
    """Let CHAT read what TARGET may read (in DMs)."""
    principal = _map().link(chat, target)
    out.print(f"{chat.strip()} now reads as {principal}", markup=False)


@identities.command()
def unlink(chat: CHAT, target: TARGET) -> None:
    """Undo a link made with `archivist identities link`."""
    if _map().unlink(chat, target):
        out.print(f"{chat.strip()} no longer reads as {target.strip()}", markup=False)
    else:
        out.print(f"{chat.strip()} was not linked to {target.strip()}", markup=False)


@identities.command("list")
def list_() -> None:
    """Every chat user with a link or a confirmed email."""
    users = _map().users()
    if not users:
        out.print("No identities yet. Slack users appear after their first DM.", markup=False)
    for user in users:
        out.print(user, markup=False)


@identities.command()
def show(chat: CHAT) -> None:
    """What CHAT reads as: admin links, the confirmed email, and the principals they give."""
    identity_map = _map()
    links, email = identity_map.show(chat)
    for entry in links:
        when = datetime.fromtimestamp(entry.at).strftime("%Y-%m-%d %H:%M")
        out.print(f"linked: {entry.principal} (by {entry.by}, {when})", markup=False)
    if email:
        out.print(f"confirmed email: {email} (from the chat platform; checked again daily)", markup=False)
    for source, (groups, at) in sorted(identity_map.groups(chat).items()):
        when = datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M")
        held = ", ".join(sorted(groups)) or "no groups"
        out.print(f"from {source}: {held} (asked {when})", markup=False)
    if not links and not email:
        out.print(f"{chat.strip()} reads as itself only", markup=False)
        return
    principals = sorted(identity_map.principals_of(chat.strip()))
    out.print("reads as: " + ", ".join(principals), markup=False)


@identities.command()
def requests() -> None:
    """Link requests Discord users made with /link, waiting for an admin."""
    waiting = _map().link_requests()
    if not waiting:
        out.print("No link requests wait.", markup=False)
    for request in waiting:
        when = datetime.fromtimestamp(request.at).strftime("%Y-%m-%d %H:%M")
        out.print(f"{request.chat} asks to read as {request.principal} ({when})", markup=False)


@identities.command()
def approve(chat: CHAT) -> None:
    """Grant CHAT's waiting /link request: it becomes an admin link."""
    principal = _map().approve_link(chat, by="admin (cli)")
    if principal is None:
        raise InputError(f"no link request waits from {chat.strip()} (see `archivist identities requests`)")
    out.print(f"{chat.strip()} now reads as {principal}", markup=False)


@identities.command()
def decline(chat: CHAT) -> None:
    """Drop CHAT's waiting /link request."""
    if not _map().decline_link(chat):
        raise InputError(f"no link request waits from {chat.strip()} (see `archivist identities requests`)")
    out.print(f"declined the link request of {chat.strip()}", markup=False)
