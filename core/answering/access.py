"""Who is asking, and from where: turning a chat context into an access scope.

Principal names are ``PLATFORM:KIND:ID``, e.g. ``slack:user:U123``,
``slack:channel:C123``, ``discord:role:42``; sources grant them in config
(``principals = [...]``) and connectors attach them from source permissions.

In a channel an answer may use only what everyone there may read: public
documents and documents granted to the channel, from the sources the channel's
policy allows. In a DM it may use what the asking user may read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.answering.answers import Mode, ModeChoice, Question
from core.answering.history import ConversationKey
from core.settings import ChatPlatformSettings


@dataclass(frozen=True)
class ChannelPolicy:
    default_sources: frozenset[str] | None = None  # None: every source
    channel_sources: Mapping[str, frozenset[str]] = field(default_factory=dict)
    channel_modes: Mapping[str, ModeChoice] = field(default_factory=dict)  # unlisted: default_mode

    @classmethod
    def from_settings(cls, settings: ChatPlatformSettings) -> ChannelPolicy:
        default = None if settings.default_sources is None else frozenset(settings.default_sources)
        return cls(
            default,
            {channel: frozenset(s) for channel, s in settings.channel_sources.items()},
            dict(settings.channel_modes),
        )

    def sources_for(self, channel: str) -> frozenset[str] | None:
        return self.channel_sources.get(channel, self.default_sources)


def principal(platform: str, kind: str, identifier: str) -> str:
    return f"{platform}:{kind}:{identifier}"


def channel_question(
    text: str,
    *,
    platform: str,
    workspace: str,
    channel: str,
    thread: str,
    policy: ChannelPolicy,
    mode: Mode | None = None,
) -> Question:
    """A question asked where others can read the answer; a mode given here wins over the channel's."""
    chosen: ModeChoice | None = mode or policy.channel_modes.get(channel)
    reason = "mode given" if mode else f"channel {channel} is set to {chosen}" if chosen else ""
    return Question(
        text=text,
        conversation=ConversationKey(platform, workspace, channel, thread),
        principals=frozenset({principal(platform, "channel", channel)}),
        sources=policy.sources_for(channel),
        mode=chosen,
        mode_reason=reason,
    )


def direct_question(
    text: str,
    *,
    platform: str,
    workspace: str,
    user: str,
    channel: str,
    thread: str = "",
    groups: Iterable[str] = (),
    mode: Mode | None = None,
) -> Question:
    """A question in a DM: the asker's own principals (user id, roles, groups) decide."""
    principals = {principal(platform, "user", user), *groups}
    return Question(
        text=text,
        conversation=ConversationKey(platform, workspace, channel, thread),
        principals=frozenset(principals),
        sources=None,
        mode=mode,
    )
