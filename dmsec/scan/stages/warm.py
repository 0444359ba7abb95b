"""Warm base models for the extract and authenticate stages.

A worker keeps the last `max_warm` base models it loaded (least recently used goes first); a
fine-tune is loaded per checkpoint on top of its warm base (a LoRA on a copy of it, so the warm
base itself never carries an adapter) and dropped afterwards. The scan sorts checkpoints by base
model before they reach the workers, so consecutive checkpoints usually share the warm one.
The fine-tune's prompt is the one `dmsec.models.prompts` discovers in its files and its ref's
hub fields; it is recorded on the item (`prompt`, `prompt_source`), so the checkpoint's row
says what FineXtract conditioned on.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

import torch

from dmsec.errors import CheckpointError
from dmsec.models.base import DiffusionModel
from dmsec.models.formats import detect_path
from dmsec.models.loading import load_model
from dmsec.models.pair import ModelPair, make_pair
from dmsec.models.prompts import CLASS_CONDITION, Prompt
from dmsec.scan.records import ScanItem


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when a GPU is visible to this process, else "cpu"."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class WarmModels:
    """An LRU of loaded base models and the pairs built on them; see the module docstring."""

    def __init__(self, device: str = "auto", max_warm: int = 2) -> None:
        """Models go to `device` ("auto": CUDA when visible); at most `max_warm` bases stay loaded."""
        if max_warm < 1:
            raise ValueError(f"`max_warm` must be >= 1; got {max_warm}")
        self.device = resolve_device(device)
        self.max_warm = max_warm
        self._bases: OrderedDict[str, DiffusionModel] = OrderedDict()
        self.loads = 0  # how many base models were loaded from disk (for tests and benchmarks)

    def base(self, path: str, allow_pickle: bool = False) -> DiffusionModel:
        """The base model at `path`, loaded once and kept warm (`allow_pickle`: the pull opt-in)."""
        if path in self._bases:
            self._bases.move_to_end(path)
            return self._bases[path]
        handle = load_model(path, device=self.device, allow_pickle=allow_pickle).eval()
        self.loads += 1
        self._bases[path] = handle
        while len(self._bases) > self.max_warm:
            self._bases.popitem(last=False)
        return handle

    def pair(self, item: ScanItem) -> ModelPair:
        """(pretrained, fine-tuned) for a pulled item."""
        if not item.local_path or not item.base_path:
            raise CheckpointError(item.name, "was not pulled (no local path or base model path)")
        base = self.base(item.base_path, item.allow_pickle)
        family = item.ref.get("family")  # the hub's word, used when the file's tensors say nothing
        detected = detect_path(item.local_path)  # the snapshot folder, or its one weights file
        hub = item.ref.get("extra") or {}
        finetuned = load_model(detected, base=base, device=self.device, family=family, allow_pickle=item.allow_pickle, hub=hub)  # fmt: skip
        _inherit_classes(finetuned, base)
        prompt = finetuned.prompt or Prompt(None, "none")
        item.prompt, item.prompt_source = prompt.text, prompt.source
        return make_pair(base, finetuned.eval())


def _inherit_classes(finetuned: DiffusionModel, base: DiffusionModel) -> None:
    """A class-conditional fine-tune published without our card keeps its base's class ids
    (∅ and the instance class): fine-tuning does not renumber the class embedding."""
    info, base_info = getattr(finetuned, "info", None), getattr(base, "info", None)
    if info is None or base_info is None or info.instance_class is not None:
        return
    if base_info.instance_class is None:
        return
    finetuned.info = replace(info, null_class=base_info.null_class,  # type: ignore[attr-defined]
                             instance_class=base_info.instance_class, instance_prompt=None)  # fmt: skip
    finetuned.prompt = Prompt(None, CLASS_CONDITION)
