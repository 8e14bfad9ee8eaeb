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

from typing import TYPE_CHECKING, Annotated, Self

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


Text = Annotated[str, BeforeValidator(_text)]
"""A non-empty string, stripped."""

Globs = Annotated[tuple[str, ...], BeforeValidator(_globs)]
"""Glob patterns: a list of strings, or one string."""


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
