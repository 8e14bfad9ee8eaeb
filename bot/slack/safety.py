"""Model and document text never pings anyone in Slack.

Slack turns ``<!here>``, ``<!channel>``, ``<!everyone>``, ``<!subteam^ID>`` and
``<@U123>`` into notifications; escaping ``&``, ``<`` and ``>`` as Slack's
formatting rules prescribe shows them as plain text instead. Bare ``@here``,
``@channel`` and ``@everyone`` get a zero-width space after the ``@``, in case a
client or a later edit turns on name linking.
"""

from __future__ import annotations

import re

ZERO_WIDTH_SPACE = "\u200b"
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_BROADCAST = re.compile(r"@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)


def neutralize(text: str) -> str:
    """``text`` as Slack mrkdwn that shows every mention literally and notifies nobody."""
    return _BROADCAST.sub("@" + ZERO_WIDTH_SPACE, text.translate(_ESCAPES))


def link_label(text: str) -> str:
    """A title safe inside ``<url|label>``: neutralised, without the separator."""
    return neutralize(text.replace("|", "/").replace("\n", " "))
