"""Admin syncs from Discord: who may run them, and how progress and the summary read.

The sync itself, and its progress, come from the core's one sync-with-progress call
(``CoreAPI.sync``), which Slack's `/archivist sync` uses too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import discord

from core.api import Progress, SyncOutcome, describe_progress
from core.settings import DiscordSettings
from core.sync.status import SyncReport

# Progress edits: often enough to look alive, rarely enough for Discord's edit limits.
PROGRESS_INTERVAL_S = 2.0


def is_admin(
    settings: DiscordSettings, user: discord.abc.User, permissions: discord.Permissions | None
) -> bool:
    """Manage Server in this guild, or a configured admin user id or role id."""
    if str(user.id) in settings.admins:
        return True
    if permissions is not None and (permissions.manage_guild or permissions.administrator):
        return True
    roles = getattr(user, "roles", [])
    return any(str(role.id) in settings.admin_roles for role in roles)


def progress_text(progress: Mapping[str, Progress | None]) -> str:
    return "\n".join(f"⏳ **{name}**: {describe_progress(update)}" for name, update in progress.items())


def report_line(report: SyncReport) -> str:
    return (
        f"{report.added} added, {report.updated} updated, {report.deleted} deleted, "
        f"{report.failed} failed ({report.unchanged} unchanged) in {report.duration_s:.1f}s"
    )


def summary(outcomes: Sequence[SyncOutcome], elapsed_s: float) -> str:
    lines = []
    for outcome in outcomes:
        if outcome.report is None or outcome.error:
            lines.append(f"❌ **{outcome.source}**: {outcome.error or 'failed'}")
            continue
        mark = "⚠️" if outcome.report.failed else "✅"
        lines.append(f"{mark} **{outcome.source}**: {report_line(outcome.report)}")
        lines += [f"  • {failure}" for failure in outcome.report.failures[:5]]
    lines.append(f"Sync finished in {elapsed_s:.1f}s.")
    return "\n".join(lines)
