"""Model fields shared by the apps."""

from __future__ import annotations

from typing import Any

import orjson
from django.db import models

from .hashing import canonical_bytes


class CanonicalJSONField(models.Field):
    """A JSON value stored as its canonical text (``core.hashing.canonical_bytes``).

    PostgreSQL: a ``json`` column, which checks the syntax and keeps the text exactly as
    written (``jsonb`` parses every number into a decimal and reorders keys — for a
    prediction's 30-feature input that parsing cost more than the rest of the row's
    insert, docs/performance.md). So the stored text is byte for byte what a hash was
    taken over, and SQL's ``->`` and ``->>`` still read it. Elsewhere: text.

    Reads give the Python value back. Only what every backend's text holds is offered:
    no lookups into the value (``jsonb``'s operators do not apply to ``json``).
    """

    description = "JSON stored as its canonical text"
    empty_strings_allowed = False

    def db_type(self, connection) -> str:
        return "json" if connection.vendor == "postgresql" else "text"

    def get_internal_type(self) -> str:
        return "CanonicalJSONField"

    def from_db_value(self, value: Any, expression, connection) -> Any:
        # psycopg loads a json column itself; SQLite hands back the text.
        if isinstance(value, str | bytes):
            return orjson.loads(value)
        return value

    def to_python(self, value: Any) -> Any:
        return value

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return canonical_bytes(value).decode("utf-8")

    def value_to_string(self, obj) -> Any:
        # As JSONField: the serializers embed the value itself.
        return self.value_from_object(obj)

    def get_lookup(self, lookup_name: str):
        # isnull is all a text-stored JSON value answers alike on every backend.
        return super().get_lookup(lookup_name) if lookup_name == "isnull" else None

