"""Slack message markup (mrkdwn) as plain readable text, and Slack's timestamps.

Slack sends ``<@U123>`` for a mention, ``<#C123|general>`` for a channel, ``<!here>`` for a
broadcast, ``<https://x|label>`` for a link, and escapes ``&``, ``<`` and ``>``. An index wants
what a person reads: "@Ann", "#general", "@here", "label (https://x)".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

_ANGLED = re.compile(r"<([^<>]+)>")


def plain_text(text: str, user_name: Callable[[str], str]) -> str:
    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return f"@{label or user_name(target[1:])}"
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!subteam^"):
            return f"@{label.lstrip('@') or 'group'}"
        if target.startswith("!"):
            return f"@{label or target[1:].split('^')[0]}"
        return f"{label} ({target})" if label and label != target else target

    text = _ANGLED.sub(replace, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def ts_key(ts: str) -> tuple[int, int]:
    """A Slack ts ("1700000000.000100") as a sortable pair; text order breaks across digit counts."""
    seconds, _, fraction = ts.partition(".")
    try:
        return int(seconds), int(fraction.ljust(6, "0")[:6])
    except ValueError:
        return 0, 0


def ts_time(ts: str) -> datetime:
    seconds, micros = ts_key(ts)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=micros)


def ts_minus(ts: str, seconds: int) -> str:
    whole, micros = ts_key(ts)
    return f"{max(0, whole - seconds)}.{micros:06d}"
