"""Load model handles from local checkpoints of any format in `dmsec.models.formats`.

`load_model(path, base)` detects the format once (`formats.detect_path`), refuses what cannot be
scanned (an unsupported adapter variant: `UnsupportedAdapterError`; weights of no diffusion model:
`NotDiffusionWeightsError`; a pickle file: refused by `safe_load`), and then:
- a model folder (diffusers) loads on its own;
- an adapter or full weights file is applied to a copy of its base model (given by `base`, or
  named by the `dmsec_model.json` card beside it) after the family check: an adapter or
  checkpoint made for another model family than the base's is a `FamilyMismatchError`.
Either way the instance prompt is what `dmsec.models.prompts` discovers in what was published
with the model (our card, a README's front matter, kohya metadata, the hub's fields in `hub`),
recorded with its source as the handle's `prompt`. Every problem is a `CheckpointError` naming
the file; weights are always read through `safe_load`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import torch

from dmsec.errors import CheckpointError
from dmsec.models.base import DiffusionModel
from dmsec.models.family import check_compatible, family_of_handle, named_family
from dmsec.models.formats import Detected, detect_path
from dmsec.models.pair import ModelPair
from dmsec.models.prompts import (
    CLASS_CONDITION,
    Prompt,
    discover_prompt,
    published_text,
    whole_words,
)
from dmsec.models.unet2d import MODEL_CARD, ModelInfo
from dmsec.models.weights import read_model_info

KIND_LABELS = {"adapter": ("lora", "LoRA"), "full": ("full", "checkpoint")}


def load_model(
    path: str | Path | Detected,
    base: str | Path | DiffusionModel | None = None,
    *,
    device: str | torch.device = "cpu",
    allow_pickle: bool = False,
    family: str | None = None,
    hub: Mapping[str, str] | None = None,
) -> DiffusionModel:
    """Load any supported checkpoint; fine-tunes given as weights only need `base`.

    `path` may be a `Detected` already (its format is then not told again). `family` is what a
    hub's metadata says the checkpoint was made for ("sd1", "sdxl", ...); it is checked against
    the base when the file's own tensors do not tell. `hub` is what the hub said about it besides
    the files (a ref's `extra`: Civitai's trained words, the Hub card's prompts).
    """
    detected = path if isinstance(path, Detected) else detect_path(path)
    detected.check_loadable()
    fmt, where = detected.format, detected.path
    assert where is not None
    if not fmt.needs_base:
        return _with_prompt(fmt.load(where, None, allow_pickle), where, hub).to(device)
    handle = _resolve_base(base, where, allow_pickle)
    card_kind, label = KIND_LABELS[fmt.kind]
    _check_family(detected, handle, family, label)
    fmt.load(where, handle, allow_pickle)
    return _with_prompt(handle, where, hub, card_kind).to(device)


def _resolve_base(
    base: str | Path | DiffusionModel | None, what: Path, allow_pickle: bool
) -> DiffusionModel:
    if base is None and (what.parent / MODEL_CARD).exists():
        named = read_model_info(what.parent).base_model  # the card beside the weights names it
        base = (what.parent / named).resolve() if named else None
    if base is None:
        raise CheckpointError(what, "is a fine-tune given as weights only: pass its base model")
    if isinstance(base, DiffusionModel):
        return copy.deepcopy(base)  # the caller's handle (e.g. a warm base) stays untouched
    return load_model(base, allow_pickle=allow_pickle)


def _check_family(detected: Detected, handle: DiffusionModel, declared: str | None, kind: str) -> None:  # fmt: skip
    """The file's family (or, when its tensors tell nothing, the hub's `declared` one) must fit
    the base's."""
    found = detected.family()
    if not found.known and found.cross_attention_dim is None and declared:
        found = named_family(declared, "from the hub's metadata")
    check_compatible(detected.path, found, family_of_handle(handle), kind)


def _with_prompt(
    handle: DiffusionModel, where: Path, hub: Mapping[str, str] | None, kind: str | None = None
) -> DiffusionModel:
    """The handle with its info's instance prompt (and, for weights applied to a base, `kind`
    and the card's base) set from what was published with `where`; `prompt` records the source.
    A class-conditional model keeps its instance class (source "class")."""
    info = getattr(handle, "info", None) or ModelInfo()
    changes = {}
    if kind is not None:
        changes = {"kind": kind, "base_model": read_model_info(where.parent).base_model}
    if info.instance_class is not None:
        prompt = Prompt(None, CLASS_CONDITION)
    else:
        vocabulary = whole_words(getattr(handle, "tokenizer", None))
        prompt = discover_prompt(published_text(where, hub), vocabulary)
    handle.info = ModelInfo(**{**info.__dict__, **changes, "instance_prompt": prompt.text})  # type: ignore[attr-defined]
    handle.prompt = prompt
    return handle


def load_pair(
    checkpoint: str | Path,
    base: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    allow_pickle: bool = False,
) -> ModelPair:
    """(pretrained, fine-tuned) for a checkpoint; `base` defaults to the one its model card names."""
    from dmsec.models.pair import make_pair

    checkpoint = Path(checkpoint)
    if base is None and checkpoint.is_dir() and read_model_info(checkpoint).base_model:
        base = (checkpoint / str(read_model_info(checkpoint).base_model)).resolve()
    if base is None:
        raise CheckpointError(checkpoint, "does not name its base model: give one (--base)")
    pretrained = load_model(base, allow_pickle=allow_pickle).to(device, dtype)
    finetuned = load_model(checkpoint, base=base, allow_pickle=allow_pickle).to(device, dtype)
    return make_pair(pretrained, finetuned)
