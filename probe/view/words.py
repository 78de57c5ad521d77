"""The words of the page and of subscriber mail, per language (i18n/<language>.toml), flat keys.

They live below web/ and notify/ because both speak them: the page, and the mails the
subscriber senders write."""
from __future__ import annotations

import functools
import tomllib
from pathlib import Path

HERE = Path(__file__).parent


@functools.cache
def texts(language: str) -> dict[str, str]:
    """Flat key -> text for a language; missing keys fall back to English."""
    english = _flatten(tomllib.loads((HERE / "i18n" / "en.toml").read_text("utf-8")))
    path = HERE / "i18n" / f"{language}.toml"
    if language == "en" or not path.exists():
        return english
    return english | _flatten(tomllib.loads(path.read_text("utf-8")))


def _flatten(table: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out
