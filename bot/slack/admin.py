"""`/archivist sync SOURCE|all`, `/archivist status`, `/archivist sources`: admins only.

Admins are the user ids in ``[slack] admins`` and, when enabled, the workspace's
own admins (``users.info`` → ``is_admin``). A sync runs in a worker thread
through the core's SyncService; its progress and final summary (added, updated,
deleted, failed, time) arrive in the admin's DM with Archivist. The sync and its
progress come from the core's one sync-with-progress call (``CoreAPI.sync``), which
Discord's /sync uses too; this module only words and posts them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocking
from bot.slack.failures import log_failure, user_message
from bot.slack.render import notice
from bot.slack.safety import neutralize
from core.api import PROGRESS_INTERVAL_S, Progress, SyncOutcome, describe_progress

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from core.api import CoreAPI

HELP = (
    "*Archivist admin commands*\n"
    "• `/archivist sync SOURCE` or `/archivist sync all`: bring the index in line with the sources\n"
    "• `/archivist status`: what each source's last sync did\n"
    "• `/archivist sources`: the configured sources and how many chunks each has"
)
REFUSAL = (
    "Sorry, only Archivist admins can run `/archivist {command}`. "
    "If you need a sync, please ask one of them. (Asking questions works for everyone: try `/ask`.)"
)


class AdminHandlers:
    def __init__(
        self,
        core: CoreAPI,
        *,
        workspace_admins: bool = False,
        progress_interval_s: float = PROGRESS_INTERVAL_S,
    ) -> None:
        self._core = core
        self._admins = set(core.settings.slack.admins)
        self._workspace_admins = workspace_admins
        self._interval_s = progress_interval_s

    def register(self, bolt: AsyncApp) -> None:
        bolt.command("/archivist")(self.on_command)

    async def is_admin(self, client: AsyncWebClient, user: str) -> bool:
        if user in self._admins:
            return True
        if not self._workspace_admins:
            return False
        info = await client.users_info(user=user)
        person = info.get("user") or {}
        return bool(person.get("is_admin") or person.get("is_owner"))

    async def on_command(
        self, ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        words = (command.get("text") or "").split()
        verb, args = (words[0].lower(), words[1:]) if words else ("help", [])
        user = command["user_id"]
        if verb not in ("sync", "status", "sources"):
            await ack(text=HELP)
            return
        await ack()
        try:
            if not await self.is_admin(client, user):
                await _say(respond, REFUSAL.format(command=verb))
            elif verb == "status":
                await _say(respond, await blocking.quick(self.status_text))
            elif verb == "sources":
                await _say(respond, await blocking.quick(self.sources_text))
            else:

                async def tell(text: str) -> None:
                    await _say(respond, text)

                await self.sync(client, tell, user, args)
        except Exception as exc:  # noqa: BLE001 - the boundary for admin commands
            log_failure(exc, f"/archivist {verb}")
            await _say(respond, user_message(exc))

    # -- status and sources --------------------------------------------------

    def status_text(self) -> str:
        names = self._core.source_names()
        lines = ["*Last sync of each source*"]
        for name in names:
            report = self._core.last_report(name)
            interval = self._core.settings.connectors[name].interval_s
            retry = report.retry_text(interval, time.time()) if report else ""
            line = report.summary() + (f"; {retry}" if retry else "") if report else f"{name}: never synced"
            lines.append(f"• {neutralize(line)}")
        return "\n".join(lines) if names else "No sources are configured."

    def sources_text(self) -> str:
        names = self._core.source_names()
        lines = ["*Configured sources*"]
        for name in names:
            info = self._core.source_info(name)
            lines.append(
                f"• *{neutralize(name)}* ({neutralize(info.kind)}): {neutralize(info.description)}"
                f", {info.chunks:,} chunks"
            )
        return "\n".join(lines) if names else "No sources are configured."

    # -- sync ----------------------------------------------------------------

    async def sync(
        self, client: AsyncWebClient, tell: Callable[[str], Awaitable[object]], user: str, args: list[str]
    ) -> None:
        """Sync the sources named in ``args``; ``tell`` says where to look, the DM gets the rest."""
        full = "--full" in args
        names = await blocking.quick(
            self._core.resolve_sources, [a for a in args if a != "--full"] or ["all"]
        )
        listed = ", ".join(names)
        await tell(f"Syncing {neutralize(listed)}; I'll report progress and the summary in our DM.")
        top = await client.chat_postMessage(
            channel=user, text=f":arrows_counterclockwise: Syncing {neutralize(listed)}…"
        )
        channel, ts = str(top["channel"]), str(top["ts"])

        async def show(progress: Mapping[str, Progress | None]) -> None:
            await client.chat_update(channel=channel, ts=ts, text=progress_text(progress))

        try:
            run = await self._core.sync(names, full=full, show=show, interval_s=self._interval_s)
        except Exception as exc:  # noqa: BLE001 - the sync's own boundary: tell the admin in the DM
            log_failure(exc, f"syncing {listed}")
            await client.chat_update(channel=channel, ts=ts, text=f":x: Sync of {neutralize(listed)} failed.")
            await client.chat_postMessage(
                channel=channel, thread_ts=ts, **notice(user_message(exc)).as_kwargs()
            )
            return
        icon = ":white_check_mark:" if run.ok else ":warning:"
        await client.chat_update(
            channel=channel,
            ts=ts,
            text=f"{icon} Sync of {neutralize(listed)} finished in {run.elapsed_s:.1f}s.",
        )
        await client.chat_postMessage(channel=channel, thread_ts=ts, text=summary_text(run.outcomes))


def progress_text(progress: Mapping[str, Progress | None]) -> str:
    """One line per source: where its sync stands, with counts once they are known."""
    return "\n".join(
        f":arrows_counterclockwise: Syncing {neutralize(name)}: {describe_progress(update)}"
        for name, update in progress.items()
    )


def summary_text(outcomes: list[SyncOutcome]) -> str:
    lines = ["*Sync summary*"]
    for outcome in outcomes:
        if outcome.report is None:
            lines.append(f"• :x: *{neutralize(outcome.source)}*: {neutralize(outcome.error)}")
            continue
        r = outcome.report
        lines.append(
            f"• *{neutralize(r.source)}*: {r.added} added, {r.updated} updated, {r.unchanged} unchanged, "
            f"{r.deleted} deleted, {r.failed} failed in {r.duration_s:.1f}s"
            + (f" (stopped: {neutralize(r.error)})" if r.error else "")
        )
        lines += [f"    ◦ {neutralize(failure)}" for failure in r.failures[:5]]
    return "\n".join(lines)


async def _say(respond: AsyncRespond, text: str) -> None:
    await respond(response_type="ephemeral", replace_original=False, text=text)
