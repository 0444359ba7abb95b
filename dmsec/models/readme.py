"""A model repo's README.md as hubs write it: the YAML front matter between `---` lines.

Hugging Face model cards keep their metadata there; diffusers' DreamBooth and LoRA training
scripts (`save_model_card`) write `base_model`, `instance_prompt`, `license`, `tags` and, in the
newer ones, `widget` entries (`- text: <prompt>`). The same README travels with a checkpoint
copied to a folder or a bucket, so every source reads it the same way.

A README is untrusted text: only its first `MAX_README_BYTES` are read, the front matter must
close within `MAX_FRONT_MATTER_BYTES`, YAML is parsed with `yaml.safe_load` (no tags that build
objects), and every value kept is a short plain string (`clean_text`: control characters
dropped, whitespace collapsed, length capped). Anything malformed reads as "no card".
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import yaml

logger = logging.getLogger(__name__)

README_NAME = "README.md"
MAX_README_BYTES = 256 * 1024
MAX_FRONT_MATTER_BYTES = 64 * 1024
MAX_FIELD_CHARS = 300
MAX_LIST_ITEMS = 16


def clean_text(value: Any, cap: int = MAX_FIELD_CHARS) -> str | None:
    """`value` as a short, printable one-line string, or None when it is not a non-empty string.

    Control and format characters (newlines, NUL, bidi overrides) are dropped, runs of
    whitespace become one space, and the result is cut to `cap` characters.
    """
    if not isinstance(value, str):
        return None
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in value
        if ch.isspace() or unicodedata.category(ch)[0] != "C"
    )
    text = re.sub(r"\s+", " ", kept).strip()[:cap].strip()
    return text or None


def _strings(value: Any) -> tuple[str, ...]:
    """A string or a list of strings as cleaned strings (at most MAX_LIST_ITEMS)."""
    items = value if isinstance(value, list) else [value]
    cleaned = (clean_text(v) for v in items[:MAX_LIST_ITEMS])
    return tuple(v for v in cleaned if v)


@dataclass(frozen=True)
class CardFields:
    """What a model card's metadata says, each value cleaned (see the module docstring)."""

    base_model: str | None = None
    instance_prompt: str | None = None
    widget_prompts: tuple[str, ...] = ()
    license: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self == CardFields()


def card_fields(data: Any) -> CardFields:
    """The fields we use from card metadata (a README's front matter, or the Hub's `cardData`)."""
    if not isinstance(data, dict):
        return CardFields()
    base = data.get("base_model")
    base = base[0] if isinstance(base, list) and base else base
    widget = data.get("widget")
    texts = [w.get("text") for w in widget[:MAX_LIST_ITEMS] if isinstance(w, dict)] if isinstance(widget, list) else []  # fmt: skip
    return CardFields(
        base_model=clean_text(base),
        instance_prompt=clean_text(data.get("instance_prompt")),
        widget_prompts=_strings(texts),
        license=clean_text(data.get("license"), 100),
        tags=_strings(data.get("tags") or []),
    )


def front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a README as a mapping; {} when it has none or it is malformed."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    size = 0
    for i, line in enumerate(lines[1:], start=1):
        size += len(line) + 1
        if size > MAX_FRONT_MATTER_BYTES:
            logger.warning("README front matter is over %d bytes; ignored", MAX_FRONT_MATTER_BYTES)
            return {}
        if line.strip() == "---":
            try:
                data = yaml.safe_load("\n".join(lines[1:i]))
            except yaml.YAMLError as exc:
                logger.warning("README front matter is not valid YAML (%s); ignored", type(exc).__name__)  # fmt: skip
                return {}
            return data if isinstance(data, dict) else {}
    return {}


def readme_fields(raw: bytes) -> CardFields:
    """The card fields of a README given as bytes (only the first MAX_README_BYTES are read)."""
    text = raw[:MAX_README_BYTES].decode("utf-8", errors="replace")
    return card_fields(front_matter(text))
