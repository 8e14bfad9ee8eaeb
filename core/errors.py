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
