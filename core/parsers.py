"""Request parsing that refuses text the database or the hashes could not take."""

from __future__ import annotations

from rest_framework.parsers import JSONParser

from core.errors import ValidationFailed


def find_unstorable_text(value, path: str = "") -> str | None:
    """Path of the first string holding NUL or a lone surrogate, else None.

    Neither can be stored (PostgreSQL refuses NUL in text and jsonb) nor encoded as
    UTF-8 for hashing, so such input is refused up front with a 400.
    """
    if isinstance(value, str):
        if "\x00" in value:
            return path or "body"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_unstorable_text(key, path) or find_unstorable_text(
                item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_unstorable_text(item, f"{path}.{index}" if path else str(index))
            if found:
                return found
    return None


def require_storable(value, field: str | None = None) -> None:
    bad = find_unstorable_text(value, field or "")
    if bad is not None:
        raise ValidationFailed("Text may not contain NUL characters or unpaired surrogates.",
                               code="invalid_characters", field=bad)


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, refusing strings that could not be stored or hashed."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
            require_storable(data)
        except RecursionError:  # nested deeper than the decoder or our walk can go
            raise ValidationFailed("JSON nested too deeply.", code="parse_error") from None
        return data
