"""Archivist's error tree.

Every error a person can cause or fix derives from :class:`ArchivistError`; each
frontend turns it into one readable line at exactly one boundary::

    ArchivistError
    ├── ConfigError            bad or missing configuration (names the key)
    ├── InputError             a question or argument the user must change
    ├── UnknownSourceError     a connector name that is not configured
    ├── AccessDenied           the caller may not do this (e.g. not an admin)
    ├── ServiceUnavailable     Redis, a vector store or a model endpoint cannot be reached
    ├── ModelError             a chat model failed while answering
    ├── SourceError            a connector could not read its source as a whole
    └── StorageError           the data directory cannot be written (read-only, full)

A failure on a single document during a sync is not an exception: it is a
``LoadFailure`` value reported in the sync summary.
"""

from __future__ import annotations


class ArchivistError(Exception):
    """Base of every error a user can act on."""


class ConfigError(ArchivistError):
    """The configuration is invalid; the message names the offending key."""


class InputError(ArchivistError):
    """The user's input cannot be processed as given."""


class UnknownSourceError(ArchivistError):
    """A source name that is not configured."""


class AccessDenied(ArchivistError):
    """The caller lacks the permission the action needs."""


class ServiceUnavailable(ArchivistError):
    """A backing service cannot be reached."""


class ModelError(ArchivistError):
    """A chat or embedding model failed."""


class SourceError(ArchivistError):
    """A connector cannot read its source at all."""


class StorageError(ArchivistError):
    """Local state (the index, locks, the embedded Redis) cannot be written."""


# One table for every frontend: error type -> (what a person in chat is told, what the
# operator at the command line is told). Frontends add only their formatting (an emoji,
# markup, "error: "). Chat users can't fix a config or a disk, so they are told whose move
# it is; the operator can, so the CLI says what is wrong and, where it helps, when to retry.
_WORDING: tuple[tuple[tuple[type[ArchivistError], ...], str, str], ...] = (
    ((InputError, UnknownSourceError, AccessDenied), "{exc}", "{exc}"),
    (
        (ServiceUnavailable,),
        "I can't answer right now: {exc}. Please try again in a minute, or tell an admin.",
        "{exc} (try again once it is reachable)",
    ),
    (
        (ModelError,),
        "The language model failed while answering ({exc}). Please try again.",
        "the language model failed: {exc}",
    ),
    (
        (ConfigError,),
        "Archivist is misconfigured: {exc}. An admin needs to fix the configuration.",
        "{exc}",
    ),
    ((SourceError,), "A source could not be read: {exc}", "{exc}"),
    (
        (StorageError,),
        "Archivist cannot write its data: {exc}. An admin needs to free space or fix permissions.",
        "{exc}",
    ),
)


def user_message(exc: BaseException, *, operator: bool = False) -> str:
    """What a person is told about an error: in chat by default, at the CLI with ``operator``.

    Errors the person can fix read as written; the others say whose move it is.
    """
    for types, chat, cli in _WORDING:
        if isinstance(exc, types):
            return (cli if operator else chat).format(exc=exc)
    return f"{exc}" if operator else f"Sorry, that did not work: {exc}"
