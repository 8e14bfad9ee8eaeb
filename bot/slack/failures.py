"""The Slack adapter's one error boundary: every failure becomes a short, honest message.

Errors the user can act on (:class:`core.errors.ArchivistError`) are worded by
core's one table (:func:`core.errors.user_message`); Slack API errors say what
Slack refused; anything else is logged with its traceback and reported as our
fault, never swallowed.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from core.errors import AccessDenied, ArchivistError, InputError, UnknownSourceError
from core.errors import user_message as core_message

log = logging.getLogger("archivist.slack")

_SLACK_HINTS = {
    "not_in_channel": "I am not in this channel; invite me with `/invite @Archivist` and try again.",
    "channel_not_found": "I cannot see this conversation; invite me to it and try again.",
    "ratelimited": "Slack is rate-limiting me right now; please try again in a minute.",
}


def user_message(exc: BaseException) -> str:
    """One or two sentences a person can act on."""
    if isinstance(exc, (InputError, UnknownSourceError, AccessDenied)):
        return core_message(exc)
    if isinstance(exc, ArchivistError):
        return f":warning: {core_message(exc)}"
    if isinstance(exc, SlackApiError):
        error = str(exc.response.get("error", "")) if exc.response is not None else ""
        return _SLACK_HINTS.get(error, f":warning: Slack refused my reply ({error or 'unknown error'}).")
    return (
        ":warning: Sorry, something went wrong on my side and I could not answer. The error has been logged."
    )


def log_failure(exc: BaseException, doing: str) -> None:
    """Expected errors are one log line; unexpected ones keep their traceback."""
    if isinstance(exc, (ArchivistError, SlackApiError)):
        log.warning("%s failed: %s", doing, exc)
    else:
        log.error("%s failed", doing, exc_info=exc)
