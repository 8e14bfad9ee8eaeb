"""👍/👎 under each answer, stored with the answer through ``FeedbackStore``.

The buttons are ``DynamicItem``s: their custom ids carry the answer id
(``archivist:vote:up:<id>``), and the bot registers the two templates at startup,
so buttons on answers posted before a restart still work. 👎 records the vote and
then opens a modal asking what was wrong; its text is stored as the vote's comment.
Each person gets a form of their own (its custom id names the answer and the user), so
several people can comment on the same answer at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import discord

from bot.discord.errors import tell_interaction
from bot.discord.render import no_mentions
from core.answering.feedback import MAX_COMMENT_CHARS
from core.api import CoreAPI

log = logging.getLogger(__name__)

_ANSWER_ID = r"[0-9a-f]{32}"
COMMENT_LIMIT = min(MAX_COMMENT_CHARS, 4000)  # Discord caps a text input at 4,000 characters
# An open "what was wrong" form is kept this long; a form left open is then forgotten, not kept forever.
MODAL_TIMEOUT_S = 3600.0


def _store(interaction: discord.Interaction) -> CoreAPI:
    return interaction.client.core  # type: ignore[attr-defined, no-any-return]


class VoteButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=rf"archivist:vote:(?P<vote>up|down):(?P<answer>{_ANSWER_ID})",
):
    def __init__(self, vote: str, answer_id: str) -> None:
        self.vote = vote
        self.answer_id = answer_id
        super().__init__(
            discord.ui.Button(
                emoji="👍" if vote == "up" else "👎",
                style=discord.ButtonStyle.secondary,
                custom_id=f"archivist:vote:{vote}:{answer_id}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> VoteButton:
        return cls(match["vote"], match["answer"])

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self._vote(interaction)
        except Exception as exc:  # noqa: BLE001 - the boundary: told to the user, logged in describe()
            await tell_interaction(interaction, exc)

    async def _vote(self, interaction: discord.Interaction) -> None:
        # Discord waits 3 s for the first response: give it before touching Redis.
        user = str(interaction.user.id)
        if self.vote == "up":
            await interaction.response.defer(ephemeral=True, thinking=True)
            await asyncio.to_thread(_store(interaction).vote, self.answer_id, user, 1)
            await interaction.followup.send(
                "Thanks, glad it helped. 👍", ephemeral=True, allowed_mentions=no_mentions()
            )
        else:
            await interaction.response.send_modal(WhatWasWrong(self.answer_id, user))
            await asyncio.to_thread(_store(interaction).vote, self.answer_id, user, -1)


class WhatWasWrong(discord.ui.Modal, title="What was wrong with this answer?"):
    details: discord.ui.TextInput[WhatWasWrong] = discord.ui.TextInput(
        label="What was wrong or missing? (optional)",
        style=discord.TextStyle.paragraph,
        required=False,
        max_length=COMMENT_LIMIT,
    )

    def __init__(self, answer_id: str, user: str) -> None:
        # discord.py keeps open forms by custom id: one per person per answer, so two people
        # commenting on the same answer each get their own (one id per answer kept only the last).
        super().__init__(custom_id=f"archivist:why:{answer_id}:{user}", timeout=MODAL_TIMEOUT_S)
        self.answer_id = answer_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        comment = str(self.details.value or "").strip()
        await interaction.response.defer(ephemeral=True, thinking=True)  # before Redis
        if comment:
            await asyncio.to_thread(
                _store(interaction).comment, self.answer_id, str(interaction.user.id), comment
            )
        await interaction.followup.send(
            "Thanks — your feedback was recorded and helps improve the answers. 👎",
            ephemeral=True,
            allowed_mentions=no_mentions(),
        )

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await tell_interaction(interaction, error)


def feedback_view(answer_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(VoteButton("up", answer_id))
    view.add_item(VoteButton("down", answer_id))
    return view


def register(client: discord.Client) -> None:
    """Make buttons of answers posted by any earlier run of the bot work again."""
    client.add_dynamic_items(VoteButton)
