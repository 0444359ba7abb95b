"""Prompt discovery: the text a published fine-tune was trained on, from what its hub says.

FineXtract conditions the fine-tune on the prompt its images were trained with (c in
ε_ft(x_t, t, c)). No hub writes our card, so the prompt is looked for where hubs and training
tools put it, first source that gives one wins:

1. `card`: `instance_prompt` of our `dmsec_model.json`;
2. `readme`: `instance_prompt` of the model card (README.md front matter, or the Hub's
   `cardData`), as diffusers' DreamBooth and LoRA training scripts write it;
3. `kohya`: the trigger words of a kohya / sd-scripts file's `ss_tag_frequency` (see
   `kohya_trigger`), with its dataset folders' `<repeats>_<words>` names;
4. `civitai`: the model version's `trainedWords`;
5. `widget`: the first of the card's `widget` prompts (example prompts, often the trigger);
6. `none`: nothing published. The condition is then ∅ (the empty prompt): FineXtract's
   unconditional guidance, ε_pre(x_t, ∅) + w (ε_ft(x_t, ∅) - ε_pre(x_t, ∅)).

A class-conditional model (the digit zoo) takes its card's instance class, source `class`.
Every text here came from a hub: `clean_text` drops control characters and caps lengths, and
the prompt as a whole is capped at `MAX_PROMPT_CHARS`.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Container, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmsec.errors import CheckpointError
from dmsec.models.base import Prompt
from dmsec.models.readme import (
    MAX_README_BYTES,
    README_NAME,
    CardFields,
    card_fields,
    clean_text,
    readme_fields,
)

logger = logging.getLogger(__name__)
__all__ = [
    "Prompt",
    "PublishedText",
    "discover_prompt",
    "kohya_trigger",
    "published_text",
    "whole_words",
]

PROMPT_SOURCES = ("card", "readme", "kohya", "civitai", "widget")
NO_PROMPT = "none"
CLASS_CONDITION = "class"
MAX_PROMPT_CHARS = 200
MAX_TAG_CHARS = 100
MAX_TRIGGER_TAGS = 4
MAX_METADATA_CHARS = 1 << 20  # a kohya JSON value longer than this is not parsed
#: keys of `CheckpointRef.extra` a hub source fills with prompt text (lists as JSON)
HUB_INSTANCE_PROMPT = "instance_prompt"
HUB_WIDGET_PROMPTS = "widget_prompts"
HUB_TRAINED_WORDS = "trained_words"
_FOLDER = re.compile(r"^\d+_(.+)$")  # kohya's "<repeats>_<class tokens>" dataset folder
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class PublishedText:
    """What a checkpoint's publisher wrote that may name its prompt, before one is chosen."""

    card_prompt: str | None = None
    readme_prompt: str | None = None
    kohya: Mapping[str, str] | None = None
    trained_words: tuple[str, ...] = ()
    widget_prompts: tuple[str, ...] = ()


def _json_object(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or len(text) > MAX_METADATA_CHARS:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _ordinary(tag: str, vocabulary: Container[str] | None) -> bool:
    """Whether every word of `tag` is a whole word of the base's tokenizer vocabulary."""
    words = _WORD.findall(tag.lower())
    return vocabulary is not None and bool(words) and all(w in vocabulary for w in words)


def kohya_trigger(metadata: Mapping[str, Any], vocabulary: Container[str] | None = None) -> str | None:  # fmt: skip
    """The trigger words a kohya file was trained with, as one prompt; None when it names none.

    sd-scripts records, per dataset folder, how often each comma-separated caption tag occurs
    (`ss_tag_frequency`: {folder: {tag: count}}) and the folders (`ss_dataset_dirs`: {folder:
    {n_repeats, img_count}}), whose names follow `<repeats>_<words>`: the words are the caption
    of every image without a caption file. The prompt joins, in order and without repeats:
    the folders' words; the tags found in every caption of their folder (the caption's constant
    part, where users put the trigger); then the most frequent tags holding a word that is not
    an ordinary word of the base's vocabulary (`vocabulary`: whole-word tokens; None treats
    every tag as rare), at most MAX_TRIGGER_TAGS tags in all. A tag that holds an earlier part
    (the caption "a sks dog in a bucket" holds the folder's "sks dog") takes its place.
    """
    frequency = _json_object(metadata.get("ss_tag_frequency"))
    dirs = _json_object(metadata.get("ss_dataset_dirs"))
    parts: list[str] = []
    for folder in [*frequency, *dirs][:64]:
        found = _FOLDER.match(str(folder))
        words = clean_text(found.group(1), MAX_TAG_CHARS) if found else None
        if words and words.lower() not in (p.lower() for p in parts):
            parts.append(words)
    counts: Counter[str] = Counter()
    constant: list[str] = []
    for folder, tags in list(frequency.items())[:64]:
        if not isinstance(tags, dict):
            continue
        raw = dirs.get(folder)
        info = raw if isinstance(raw, dict) else {}
        n_images = info.get("img_count") if isinstance(info.get("img_count"), int) else None
        clean = {t: n for t, n in ((clean_text(k, MAX_TAG_CHARS), v) for k, v in list(tags.items())[:10_000]) if t and isinstance(n, int) and n > 0}  # fmt: skip
        if not clean:
            continue
        most = n_images or max(clean.values())
        constant += [t for t, n in clean.items() if n >= most]
        counts.update(clean)
    rare = [t for t, _ in counts.most_common() if not _ordinary(t, vocabulary)]
    for tag in [*constant, *rare]:
        if any(tag.lower() in p.lower() for p in parts):
            continue
        kept = [
            p for p in parts if p.lower() not in tag.lower()
        ]  # a tag holding a part replaces it
        if len(kept) >= MAX_TRIGGER_TAGS:
            break
        parts = [*kept, tag] if len(kept) == len(parts) else [tag, *kept]
    return clean_text(", ".join(parts), MAX_PROMPT_CHARS) if parts else None


def discover_prompt(published: PublishedText, vocabulary: Container[str] | None = None) -> Prompt:
    """The first prompt the sources give, in the order of the module docstring."""
    kohya = kohya_trigger(published.kohya, vocabulary) if published.kohya else None
    words = [w for w in (clean_text(w, MAX_TAG_CHARS) for w in published.trained_words) if w]
    candidates = (
        ("card", published.card_prompt),
        ("readme", published.readme_prompt),
        ("kohya", kohya),
        ("civitai", ", ".join(words[:MAX_TRIGGER_TAGS])),
        ("widget", published.widget_prompts[0] if published.widget_prompts else None),
    )
    for source, text in candidates:
        cleaned = clean_text(text, MAX_PROMPT_CHARS)
        if cleaned:
            return Prompt(cleaned, source)
    return Prompt(None, NO_PROMPT)


def card_extra(card: CardFields | Mapping[str, Any] | None) -> dict[str, str]:
    """A model card's prompt fields (cleaned; the Hub's `cardData` or a README's front matter)
    as a ref's `extra`, lists as JSON: what `published_text` reads back."""
    if not isinstance(card, CardFields):
        card = card_fields(dict(card) if isinstance(card, Mapping) else None)
    extra = {HUB_INSTANCE_PROMPT: card.instance_prompt} if card.instance_prompt else {}
    if card.widget_prompts:
        extra[HUB_WIDGET_PROMPTS] = json.dumps(list(card.widget_prompts))
    return extra


def trained_words_extra(words: Any) -> dict[str, str]:
    """Civitai's `trainedWords` (cleaned, at most 16) as a ref's `extra`."""
    cleaned = [clean_text(w, MAX_TAG_CHARS) for w in words[:16]] if isinstance(words, list) else []
    kept = [w for w in cleaned if w]
    return {HUB_TRAINED_WORDS: json.dumps(kept)} if kept else {}


def whole_words(tokenizer: Any) -> frozenset[str] | None:
    """The whole-word tokens of a CLIP-style BPE tokenizer ("cat</w>" -> "cat"), or None."""
    get_vocab = getattr(tokenizer, "get_vocab", None)
    if get_vocab is None:
        return None
    return frozenset(t[: -len("</w>")].lower() for t in get_vocab() if t.endswith("</w>"))


def hub_list(hub: Mapping[str, str], key: str) -> tuple[str, ...]:
    try:
        value = json.loads(hub.get(key) or "[]")
    except json.JSONDecodeError:
        return ()
    return tuple(str(v) for v in value[:16] if isinstance(v, str)) if isinstance(value, list) else ()  # fmt: skip


def _kohya_metadata(weights: list[Path]) -> Mapping[str, str] | None:
    from dmsec.models.safe_load import safetensors_metadata

    for path in weights:
        try:
            meta = safetensors_metadata(path)
        except CheckpointError as exc:  # the loader reports the file; discovery just skips it
            logger.info("%s: no metadata read (%s)", path, exc)
            continue
        if any(key.startswith("ss_") for key in meta):
            return meta
    return None


def published_text(path: str | Path, hub: Mapping[str, str] | None = None) -> PublishedText:
    """What was published with the checkpoint at `path` (a model folder or a weights file):
    our card and a README.md in its folder, a kohya file's metadata, and the hub's own fields
    (`hub`: a ref's `extra`, filled by the hub source)."""
    from dmsec.models.weights import read_model_info

    path = Path(path)
    folder = path if path.is_dir() else path.parent
    hub = hub or {}
    readme = folder / README_NAME
    fields = None
    if readme.is_file():
        with readme.open("rb") as f:
            fields = readme_fields(f.read(MAX_README_BYTES))
    if path.is_dir():
        weights = sorted(p for p in path.glob("*.safetensors") if p.is_file())
    else:
        weights = [path] if path.suffix.lower() == ".safetensors" else []
    widget = fields.widget_prompts if fields else ()
    return PublishedText(
        card_prompt=read_model_info(folder).instance_prompt,
        readme_prompt=(fields.instance_prompt if fields else None) or hub.get(HUB_INSTANCE_PROMPT),
        kohya=_kohya_metadata(weights),
        trained_words=hub_list(hub, HUB_TRAINED_WORDS),
        widget_prompts=widget or hub_list(hub, HUB_WIDGET_PROMPTS),
    )
