"""Who a Slack user is in the sources: their confirmed email, from ``users.info``.

Before a DM is answered, the asker's email is read from Slack (``users.info``, which returns
``profile.email`` only with the ``users:read.email`` scope) and handed to the core's identity
map, which then lets the DM read what that address may read in Drive and Confluence. Slack is
asked once a day per user (the map keeps the address that long). Only an address Slack marks
``is_email_confirmed`` counts; bots, deleted users and a missing scope add nothing, and a failed
lookup never stops the answer: the asker then reads with their Slack identity alone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.answering.access import principal

if TYPE_CHECKING:
    from core.answering.identities import IdentityMap

log = logging.getLogger(__name__)


class SlackIdentities:
    def __init__(self, identities: IdentityMap) -> None:
        self._identities = identities
        self._missing_scope_logged = False

    async def learn(self, client: AsyncWebClient, user: str) -> None:
        """Record ``user``'s confirmed email in the identity map, unless it is already there."""
        chat = principal("slack", "user", user)
        if not user or self._identities.knows_email(chat):
            return
        try:
            response = await client.users_info(user=user)
        except SlackApiError as exc:
            log.info("users.info for %s failed (%s); answering with the Slack identity only", user, exc)
            return
        member = response.get("user") or {}
        email = (member.get("profile") or {}).get("email")
        if member.get("deleted") or member.get("is_bot"):
            return
        if not email:
            if not self._missing_scope_logged:
                log.warning(
                    "Slack gave no email for %s: add the users:read.email scope so DMs can read "
                    "documents shared with the asker's address",
                    user,
                )
                self._missing_scope_logged = True
            return
        if member.get("is_email_confirmed") is False:
            return  # an address Slack has not confirmed proves nothing
        self._identities.note_email(chat, str(email))
