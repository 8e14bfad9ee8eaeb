"""Admin syncs from Discord: who may run them, progress while they run, the summary after.

The sync itself is ``SyncService.sync_many`` in a worker thread (it embeds and
writes; the event loop must stay free). Its progress callback only stores the
latest ``Progress``; the loop shows it every ``PROGRESS_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import discord

from core.settings import DiscordSettings
from core.sync.engine import Progress
from core.sync.service import SyncOutcome, SyncService
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


class SyncTracker:
    """Syncs this bot is running now, with their latest progress (for /sync-status)."""

    def __init__(self) -> None:
        self.running: dict[str, Progress | None] = {}

    def progress_text(self, names: Sequence[str]) -> str:
        lines = []
        for name in names:
            if name not in self.running:
                continue
            lines.append(f"⏳ **{name}**: {describe_progress(self.running[name])}")
        return "\n".join(lines)

    async def run(
        self,
        service: SyncService,
        names: Sequence[str],
        *,
        full: bool,
        show: Callable[[str], Awaitable[object]],
        interval_s: float = PROGRESS_INTERVAL_S,
    ) -> tuple[list[SyncOutcome], float]:
        """Sync ``names`` in a thread, calling ``show`` with progress text now and then."""
        started = time.monotonic()
        for name in names:
            self.running[name] = None

        def on_progress(progress: Progress) -> None:  # called in the worker thread
            self.running[progress.source] = progress

        work = asyncio.ensure_future(
            asyncio.to_thread(service.sync_many, names, full=full, progress=on_progress)
        )
        shown = ""
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=interval_s)
                if done:
                    break
                text = self.progress_text(names)
                if text and text != shown:
                    await show(text)
                    shown = text
            return work.result(), time.monotonic() - started
        finally:
            for name in names:
                self.running.pop(name, None)


def describe_progress(progress: Progress | None) -> str:
    if progress is None:
        return "starting…"
    if progress.stage == "listing":
        return "listing documents…"
    if progress.total:
        return f"{progress.stage} {progress.done}/{progress.total} documents…"
    return f"{progress.stage} ({progress.done} documents so far)…"


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
