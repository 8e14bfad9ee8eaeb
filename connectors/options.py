"""Each connector declares its options as one pydantic model.

A subclass of ``ConnectorOptions`` lists a source's own keys with their types and defaults;
``parse(settings)`` reads its ``[connectors.NAME]`` table and raises a ValueError that names
the key at fault (the registry turns it into ``connectors.NAME: ...``)::

    class FilesystemOptions(ConnectorOptions):
        path: Text
        include: Globs = ("**/*",)

An unknown key is named with every key the source takes; a missing one says it is required
(and what it is, from the field's ``description``); a bad value says what it must be.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo
from pydantic_core import ErrorDetails

if TYPE_CHECKING:
    from core.settings import ConnectorSettings


def _text(value: object, info: ValidationInfo) -> str:
    if not isinstance(value, str) or not value.strip():
        msg = f"'{info.field_name}' must be a non-empty string"
        raise ValueError(msg)
    return value.strip()


def _globs(value: object, info: ValidationInfo) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        msg = f"'{info.field_name}' must be a list of glob strings"
        raise ValueError(msg)
    return tuple(value)


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _env_name(value: object, info: ValidationInfo) -> str:
    if not isinstance(value, str) or not _ENV_NAME.match(value.strip()):
        msg = f"'{info.field_name}' must name an environment variable (letters, digits, _), not {value!r}"
        raise ValueError(msg)
    return value.strip()


def _http_url(value: object, info: ValidationInfo) -> str:
    parts = urlsplit(value.strip()) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        msg = f"'{info.field_name}' must be an absolute http(s) URL, not {value!r}"
        raise ValueError(msg)
    return str(value).strip().rstrip("/")


def _email(value: object, info: ValidationInfo) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        msg = f"'{info.field_name}' must be an email address, not {value!r}"
        raise ValueError(msg)
    return value.strip()


def _strings(value: object, info: ValidationInfo) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v.strip() for v in value):
        msg = f"'{info.field_name}' must be a list of non-empty strings"
        raise ValueError(msg)
    return tuple(dict.fromkeys(v.strip() for v in value))


def _flag(value: object, info: ValidationInfo) -> bool:
    if not isinstance(value, bool):
        msg = f"'{info.field_name}' must be true or false"
        raise ValueError(msg)
    return value


def _whole_number(minimum: int) -> BeforeValidator:
    def check(value: object, info: ValidationInfo) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            msg = f"'{info.field_name}' must be a whole number of at least {minimum}, not {value!r}"
            raise ValueError(msg)
        return value

    return BeforeValidator(check)


Text = Annotated[str, BeforeValidator(_text)]
"""A non-empty string, stripped."""

Count = Annotated[int, _whole_number(0)]
"""A whole number, 0 or more (not a string, not true/false)."""

PositiveCount = Annotated[int, _whole_number(1)]
"""A whole number, 1 or more."""

Globs = Annotated[tuple[str, ...], BeforeValidator(_globs)]
"""Glob patterns: a list of strings, or one string."""

EnvName = Annotated[str, BeforeValidator(_env_name)]
"""The name of an environment variable (secrets are read from the environment, never the file)."""

HttpUrl = Annotated[str, BeforeValidator(_http_url)]
"""An absolute http(s) URL, without a trailing slash."""

Email = Annotated[str, BeforeValidator(_email)]
"""An email address."""

Strings = Annotated[tuple[str, ...], BeforeValidator(_strings)]
"""Non-empty strings (a list, or one string), stripped, without repeats."""

Flag = Annotated[bool, BeforeValidator(_flag)]
"""true or false, nothing that merely looks like it."""


class ConnectorOptions(BaseModel):
    """A source's own options (the keys of its table besides ``type``, ``public``, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, settings: ConnectorSettings) -> Self:
        # Unknown keys first, with the message that lists every key a source takes.
        options = settings.options(set(cls.model_fields))
        try:
            return cls.model_validate(options)
        except ValidationError as exc:
            errors = [cls._explain(error, settings.type) for error in exc.errors()]
            raise ValueError("; ".join(errors)) from None

    @classmethod
    def _explain(cls, error: ErrorDetails, source_type: str) -> str:
        key = str(error["loc"][0]) if error["loc"] else "options"
        if error["type"] == "missing":
            field = cls.model_fields.get(key)
            what = f" ({field.description})" if field is not None and field.description else ""
            return f"'{key}' is required for a {source_type} source{what}"
        ctx = error.get("ctx") or {}
        if error["type"] == "value_error" and "error" in ctx:
            return str(ctx["error"])  # a validator's own message, which names the key
        return f"'{key}': {error['msg'][:1].lower()}{error['msg'][1:]}"
