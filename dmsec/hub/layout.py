"""Finding checkpoints in a tree of files (a local folder, an S3 prefix) without loading weights.

Rules, in order:
1. a folder holding `dmsec_model.json` (the tiny zoo's marker) is one checkpoint; its `kind`
   ("full", "base", "lora") and `base_model` come from that file;
2. a diffusers folder (`model_index.json`, or `unet/config.json` one level down) is a full model;
3. a PEFT adapter folder (`adapter_config.json`) is a LoRA, base from `base_model_name_or_path`;
3b. a folder whose README.md has model-card front matter (`dmsec.models.readme`) and top-level
   `.safetensors` weights is one checkpoint, as a Hugging Face repo is (a LoRA when its weights
   are an adapter, as diffusers' LoRA scripts save them);
4. a `.safetensors` file outside those folders is a single-file checkpoint, its kind told by
   its header's format (`dmsec.models.formats.detect_header`, told once): an adapter in any
   layout (PEFT, diffusers, kohya, LyCORIS, even an unsupported variant) -> LoRA; the original
   SD layout (`model.diffusion_model.*`) or a diffusers UNet's weights -> full; anything else
   (valid header, unrelated tensors) is listed too, with a `skip_reason`, so the scan shows it
   looked at it;
   A Civitai downloader's `<name>.civitai.info` beside the file (the model version's JSON) gives
   its `baseModel` and `trainedWords`;
5. a pickle-format file (.ckpt, .pt, ...) outside those folders is listed as a single-file
   checkpoint with its kind guessed from the name, so the pull step can refuse it visibly.
A folder inside an earlier-found checkpoint folder is part of it, not another checkpoint. Every
checkpoint folder's README front matter is read as hub metadata (`card`: base model, instance
prompt, widget prompts, licence, tags); our card and a PEFT config name the base first. When a
LoRA names no base model, the safetensors `__metadata__` is asked (`base_model`,
`base_model_name_or_path`, kohya's `ss_sd_model_name`, the PEFT config in `lora_config`). The
base-model family comes from the same reads: a weights header's shapes, or `unet/config.json`,
else from the base model's name ("runwayml/stable-diffusion-v1-5" -> sd1).
A dmsec-card or PEFT folder whose weights files all hold no diffusion model gets a
`skip_reason` too. Only headers and small JSON files are read, through a `TreeReader`.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Protocol

from dmsec.hub.ref import Kind
from dmsec.models.family import family_from_hub, family_of_unet_config
from dmsec.models.formats import Detected, detect_header
from dmsec.models.prompts import trained_words_extra
from dmsec.models.readme import (
    MAX_README_BYTES,
    README_NAME,
    CardFields,
    clean_text,
    readme_fields,
)
from dmsec.models.safe_load import PICKLE_SUFFIXES

logger = logging.getLogger(__name__)

MARKER_NAME = "dmsec_model.json"
MAX_JSON_BYTES = 1 << 20
MAX_DETECT_HEADER_BYTES = 16 << 20
CIVITAI_INFO = ".civitai.info"
_MARKER_KINDS = {"full": "full", "base": "base", "lora": "lora"}
_METADATA_BASE_KEYS = ("base_model", "base_model_name_or_path", "ss_sd_model_name")


@dataclass(frozen=True)
class FileEntry:
    """A file in a tree: path relative to the tree root, size, mtime, and an ETag where known."""

    path: str
    size: int
    modified: datetime | None = None
    etag: str | None = None


class TreeReader(Protocol):
    """Reads the few bytes detection needs."""

    def read_range(self, path: str, start: int, length: int) -> bytes:
        """`length` bytes of `path` from offset `start` (fewer at the end of the file)."""
        ...


@dataclass(frozen=True)
class DetectedCheckpoint:
    """A checkpoint found in a tree: `root` is a folder ("" = the tree root) or, for a
    single-file checkpoint, the file's path. `files` have paths relative to `root`'s folder."""

    root: str
    single_file: bool
    kind: Kind
    base_model: str | None
    files: tuple[FileEntry, ...]
    marker: dict | None = None
    family: str | None = None
    skip_reason: str | None = None
    card: CardFields = CardFields()
    hub_extra: dict[str, str] = field(default_factory=dict)


def _parent(path: str) -> str:
    parent = str(PurePosixPath(path).parent)
    return "" if parent == "." else parent


def _under(path: str, folder: str) -> bool:
    return folder == "" or path == folder or path.startswith(folder + "/")


def _relative(path: str, folder: str) -> str:
    return path if folder == "" else path[len(folder) + 1 :]


def read_json(reader: TreeReader, entry: FileEntry) -> dict | None:
    """A small JSON object file, or None (logged) when it is too big or not a JSON object."""
    if entry.size > MAX_JSON_BYTES:
        logger.warning("%s: %d bytes, too big for a config file; ignored", entry.path, entry.size)
        return None
    try:
        value = json.loads(reader.read_range(entry.path, 0, entry.size))
    except (UnicodeDecodeError, json.JSONDecodeError):
        logger.warning("%s: not valid JSON; ignored", entry.path)
        return None
    return value if isinstance(value, dict) else None


def read_card(reader: TreeReader, entry: FileEntry) -> CardFields:
    """The model-card fields of a README.md's front matter (its first MAX_README_BYTES only)."""
    return readme_fields(reader.read_range(entry.path, 0, min(entry.size, MAX_README_BYTES)))


def read_header(reader: TreeReader, entry: FileEntry) -> dict | None:
    """The JSON header of a safetensors file (unvalidated: the pull step validates), or None."""
    prefix = reader.read_range(entry.path, 0, 8) if entry.size >= 8 else b""
    if len(prefix) < 8:  # too short, or shrank since it was listed
        return None
    (length,) = struct.unpack("<Q", prefix)
    if length > min(MAX_DETECT_HEADER_BYTES, entry.size - 8):
        logger.warning("%s: implausible safetensors header length %d", entry.path, length)
        return None
    try:
        header = json.loads(reader.read_range(entry.path, 8, length))
    except (UnicodeDecodeError, json.JSONDecodeError):
        logger.warning("%s: safetensors header is not valid JSON", entry.path)
        return None
    return header if isinstance(header, dict) else None


def base_model_from_metadata(header: dict) -> str | None:
    """The base model a safetensors `__metadata__` names, if any."""
    meta = header.get("__metadata__")
    if not isinstance(meta, dict):
        return None
    for key in _METADATA_BASE_KEYS:
        if isinstance(meta.get(key), str) and meta[key].strip():
            return str(meta[key]).strip()
    try:
        config = json.loads(meta.get("lora_config") or "{}")
    except (TypeError, json.JSONDecodeError):
        return None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    return base.strip() if isinstance(base, str) and base.strip() else None


@dataclass(frozen=True)
class _Weights:
    """What one weights file's header says: kind, base, family, and why it is skipped."""

    kind: Kind
    base_model: str | None = None
    family: str | None = None
    skip_reason: str | None = None


def _family_name(detected: Detected) -> str | None:
    family = detected.family()
    return family.name if family.known else None


def _weights_of(reader: TreeReader, entry: FileEntry) -> _Weights | None:
    """Kind, base, family of a weights file; None when it is not a weights file at all."""
    name = PurePosixPath(entry.path).name.lower()
    guess: Kind = "lora" if "lora" in name else "full"
    if name.endswith(PICKLE_SUFFIXES):
        return _Weights(guess)
    if not name.endswith(".safetensors"):
        return None
    header = read_header(reader, entry)
    if header is None:
        # Unreadable header: list it anyway (kind from the name); the pull step reports why.
        return _Weights(guess)
    detected = detect_header(header)
    kind = detected.ref_kind
    if kind is None:
        return _Weights(guess, skip_reason=detected.reason)
    return _Weights(kind, base_model_from_metadata(header), _family_name(detected))


def _folder_roots(entries: dict[str, FileEntry], reader: TreeReader) -> dict[str, tuple]:
    """Checkpoint folders by the marker that made them one: {folder: (rule, marker json)}."""
    found: dict[str, tuple] = {}
    rank = {"dmsec": 0, "diffusers": 1, "peft": 2, "readme": 3}
    for path, entry in entries.items():
        name, folder = PurePosixPath(path).name, _parent(path)
        rule: tuple | None = None
        if name == MARKER_NAME:
            marker = read_json(reader, entry)
            if marker is not None and marker.get("kind") in _MARKER_KINDS:
                rule = ("dmsec", marker)
            else:
                logger.warning("%s: no valid `kind` (full, base, lora); ignored", path)
        elif name == "model_index.json":
            rule = ("diffusers", None)
        elif name == "config.json" and PurePosixPath(folder).name == "unet":
            folder, rule = _parent(folder), ("diffusers", None)
        elif name == "adapter_config.json":
            rule = ("peft", read_json(reader, entry) or {})
        elif name == README_NAME and _has_top_weights(entries, folder):
            card = read_card(reader, entry)
            rule = ("readme", None) if not card.empty else None
        if rule is not None and (folder not in found or rank[rule[0]] < rank[found[folder][0]]):
            found[folder] = rule
    return found


def _has_top_weights(entries: dict[str, FileEntry], folder: str) -> bool:
    """Whether `folder` itself (not a subfolder) holds a `.safetensors` file."""
    return any(_parent(p) == folder and p.lower().endswith(".safetensors") for p in entries)


def has_root_marker(names: Sequence[str]) -> bool:
    """Whether files with these root-relative paths make the tree root itself a checkpoint."""
    markers = {MARKER_NAME, "model_index.json", "adapter_config.json", "unet/config.json"}
    return any(n in markers for n in names)


def detect_checkpoints(
    entries: Sequence[FileEntry], reader: TreeReader
) -> Iterator[DetectedCheckpoint]:
    """Yield the checkpoints in a tree (see the module docstring for the rules)."""
    by_path = {e.path: e for e in entries}
    candidates = _folder_roots(by_path, reader)
    roots: list[str] = []
    for folder in sorted(candidates, key=lambda f: (f.count("/") + (f != ""), f)):
        if not any(_under(folder, outer) for outer in roots):
            roots.append(folder)
    for folder in roots:
        rule, marker = candidates[folder]
        files = tuple(
            FileEntry(_relative(e.path, folder), e.size, e.modified, e.etag)
            for e in entries
            if _under(e.path, folder)
        )
        kind: Kind = "full"
        base: str | None = None
        if rule == "dmsec":
            kind = _MARKER_KINDS[marker["kind"]]  # type: ignore[assignment]
            raw_base = marker.get("base_model")
            base = raw_base.strip() if isinstance(raw_base, str) and raw_base.strip() else None
        elif rule == "peft":
            kind = "lora"
            raw_base = marker.get("base_model_name_or_path")
            base = raw_base.strip() if isinstance(raw_base, str) and raw_base.strip() else None
        readme = by_path.get(f"{folder}/{README_NAME}" if folder else README_NAME)
        card = read_card(reader, readme) if readme is not None else CardFields()
        weights = _folder_weights(reader, folder, files, rule)
        if rule == "readme" and any(w.kind == "lora" for w in weights):
            kind = "lora"
        base = base or card.base_model
        if kind == "lora" and base is None:
            base = next((w.base_model for w in weights if w.base_model), None)
        family = (
            _folder_family(reader, folder, files)
            or next((w.family for w in weights if w.family), None)
            or family_from_hub(base)
        )
        skip = None
        if weights and all(w.skip_reason for w in weights):
            skip = weights[0].skip_reason
        yield DetectedCheckpoint(
            folder, False, kind, base, files, marker if rule == "dmsec" else None, family, skip,
            card,
        )  # fmt: skip
    for entry in entries:
        if any(_under(entry.path, folder) for folder in roots):
            continue
        found = _weights_of(reader, entry)
        if found is not None:
            name = PurePosixPath(entry.path).name
            single = FileEntry(name, entry.size, entry.modified, entry.etag)
            base, hub = civitai_info(reader, by_path.get(_civitai_info_path(entry.path)))
            base = found.base_model or base
            family = found.family or family_from_hub(base)
            yield DetectedCheckpoint(
                entry.path, True, found.kind, base, (single,), None, family,
                found.skip_reason, hub_extra=hub,
            )  # fmt: skip


def _civitai_info_path(path: str) -> str:
    """`x.civitai.info` beside `x.safetensors`, as Civitai downloaders save the version's JSON."""
    return str(PurePosixPath(path).with_suffix(CIVITAI_INFO))


def civitai_info(reader: TreeReader, entry: FileEntry | None) -> tuple[str | None, dict[str, str]]:
    """(base model, prompt fields for the ref's `extra`) from a Civitai model version's JSON
    saved beside a downloaded file (`baseModel`, `trainedWords`); (None, {}) without one."""
    info = read_json(reader, entry) if entry is not None else None
    if info is None:
        return None, {}
    return clean_text(info.get("baseModel"), 100), trained_words_extra(info.get("trainedWords"))


def _full_entry(folder: str, f: FileEntry) -> FileEntry:
    return FileEntry(f.path if folder == "" else f"{folder}/{f.path}", f.size)


def _folder_weights(
    reader: TreeReader, folder: str, files: Sequence[FileEntry], rule: str
) -> list[_Weights]:
    """What the top-level weights files of a card or PEFT folder hold (diffusers folders: none).

    A diffusers folder's components are told by its configs, not its weights' names, so its
    files are not classified (a VAE's weights alone would look like no diffusion model).
    """
    paths = {f.path for f in files}
    if rule == "diffusers" or "model_index.json" in paths or "unet/config.json" in paths:
        return []
    found = []
    for f in files:
        if "/" not in f.path and f.path.lower().endswith(".safetensors"):
            weights = _weights_of(reader, _full_entry(folder, f))
            if weights is not None:
                found.append(weights)
    return found


def _folder_family(reader: TreeReader, folder: str, files: Sequence[FileEntry]) -> str | None:
    """The family a diffusers folder's `unet/config.json` (or root `config.json`) names."""
    for f in files:
        if f.path in ("unet/config.json", "config.json"):
            config = read_json(reader, _full_entry(folder, f))
            if (
                config is None
                or "_class_name" not in config
                and "cross_attention_dim" not in config
            ):
                continue
            family = family_of_unet_config(config, str(config.get("_class_name", "")))
            if family.known:
                return family.name
    return None
