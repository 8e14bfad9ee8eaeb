"""Archivist's App Home tab: what you can ask about, and for admins, syncs at a glance.

On ``app_home_opened`` the tab is published for that person (``views.publish``): the
sources open to them with when each last synced, and how to ask. Admins also see each
source's last sync result, the syncs running now, and a button that syncs every source
(the same run as ``/archivist sync all``: progress and summary in their DM). The button
checks again that its presser is an admin: a forged action starts nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocking
from bot.slack.admin import REFUSAL, AdminHandlers
from bot.slack.failures import log_failure, user_message
from bot.slack.render import Block
from bot.slack.safety import neutralize
from core.answering.access import principal
from core.api import describe_progress

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from core.api import CoreAPI

SYNC_ALL = "archivist_home_sync_all"
HOW_TO = (
    "*How to ask*\n"
    "• Mention me in a channel: `@Archivist how many vacation days do we get?`\n"
    "• Send me a DM, or open me in the AI-app split view beside any channel\n"
    "• React with :question: to a message, or use its *Ask Archivist about this message* shortcut\n"
    "• `/ask` answers privately; you can share the answer after"
)


def _ago(at: float) -> str:
    minutes = max(0, int((time.time() - at) / 60))
    if minutes < 60:
        return f"{minutes} min ago"
    if minutes < 48 * 60:
        return f"{minutes // 60} h ago"
    return f"{minutes // (24 * 60)} days ago"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}


class HomeTab:
    def __init__(self, core: CoreAPI, admin: AdminHandlers) -> None:
        self._core = core
        self._admin = admin

    def register(self, bolt: AsyncApp) -> None:
        bolt.event("app_home_opened")(self.on_opened)
        bolt.action(SYNC_ALL)(self.on_sync)

    # -- what a person sees ----------------------------------------------------

    def sources_lines(self, user: str) -> list[str]:
        lines = []
        for name in self._core.open_sources(frozenset({principal("slack", "user", user)})):
            report = self._core.last_report(name)
            synced = (
                f"synced {_ago(report.finished_at)}" if report and report.finished_at else "not synced yet"
            )
            lines.append(f"• *{neutralize(name)}*: {synced}")
        return lines

    def admin_lines(self) -> list[str]:
        running = self._core.running_syncs()
        lines = [
            f"• :arrows_counterclockwise: {neutralize(n)}: {describe_progress(p)}" for n, p in running.items()
        ]
        for name in self._core.source_names():
            if name not in running:
                report = self._core.last_report(name)
                lines.append(
                    f"• {neutralize(report.summary()) if report else f'{neutralize(name)}: never synced'}"
                )
        return lines

    def view(self, user: str, *, admin: bool) -> dict[str, Any]:
        sources = self.sources_lines(user)
        blocks: list[Block] = [
            {"type": "header", "text": {"type": "plain_text", "text": "Archivist"}},
            _section(
                "*What you can ask about*\n"
                + (
                    "\n".join(sources)
                    if sources
                    else "No sources are open to everyone yet; ask in a channel."
                )
            ),
            _section(HOW_TO),
        ]
        if admin:
            blocks += [
                {"type": "divider"},
                _section(
                    "*Sync status* (admins)\n"
                    + ("\n".join(self.admin_lines()) or "No sources are configured.")
                ),
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "Sync all sources"},
                            "action_id": SYNC_ALL,
                            "value": "all",
                            "style": "primary",
                        }
                    ],
                },
            ]
        return {"type": "home", "blocks": blocks}

    async def publish(self, client: AsyncWebClient, user: str) -> None:
        admin = await self._admin.is_admin(client, user)
        view = await blocking.quick(self.view, user, admin=admin)
        await client.views_publish(user_id=user, view=view)

    # -- listeners -------------------------------------------------------------

    async def on_opened(self, event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        try:
            await self.publish(client, event["user"])
        except Exception as exc:  # noqa: BLE001 - the boundary for the Home tab
            log_failure(exc, "publishing the App Home tab")

    async def on_sync(self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        user = body["user"]["id"]

        async def tell(text: str) -> None:  # there is no response_url on a Home tab: the DM it is
            await client.chat_postMessage(channel=user, text=text)

        try:
            if not await self._admin.is_admin(client, user):
                await tell(REFUSAL.format(command="sync"))
                return
            await self._admin.sync(client, tell, user, ["all"])
            await self.publish(client, user)
        except Exception as exc:  # noqa: BLE001 - the boundary for the Home tab's sync button
            log_failure(exc, "syncing from the App Home tab")
            await tell(user_message(exc))
