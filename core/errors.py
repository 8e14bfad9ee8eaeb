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


def user_message(exc: ArchivistError) -> str:
    """What a person in chat is told about an error: one table for every frontend.

    Frontends add only their formatting (an emoji, markup). Errors the person can fix
    read as written; the others say whose move it is.
    """
    if isinstance(exc, (InputError, UnknownSourceError, AccessDenied)):
        return str(exc)
    if isinstance(exc, ServiceUnavailable):
        return f"I can't answer right now: {exc}. Please try again in a minute, or tell an admin."
    if isinstance(exc, ModelError):
        return f"The language model failed while answering ({exc}). Please try again."
    if isinstance(exc, ConfigError):
        return f"Archivist is misconfigured: {exc}. An admin needs to fix the configuration."
    if isinstance(exc, SourceError):
        return f"A source could not be read: {exc}"
    if isinstance(exc, StorageError):
        return f"Archivist cannot write its data: {exc}. An admin needs to free space or fix permissions."
    return f"Sorry, that did not work: {exc}"
