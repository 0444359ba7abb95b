"""The last rows of the table: pickle-format files (refused) and weights of no diffusion model.

- `PickleFile`: `.ckpt`, `.pt`, `.bin`, ... single files. Loading runs `safe_load`'s refusal
  (unless opted in, and then only after the pickle scan), and even a clean one is an error:
  convert it to safetensors.
- `NotDiffusion`: a valid safetensors header whose tensors are in no row above (a text model, an
  embedding, an unrelated net): a `skipped` row with the reason, not an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dmsec.errors import CheckpointError
from dmsec.models.formats.base import CheckpointFormat, Probe
from dmsec.models.safe_load import PICKLE_SUFFIXES

if TYPE_CHECKING:
    from dmsec.models.base import DiffusionModel


class PickleFile(CheckpointFormat):
    """A pickle-format single file (`.ckpt`, `.pt`, `.bin`, ...)."""

    name = "pickle-file"
    title = "pickle-format single file"
    kind = "refused"

    def matches(self, probe: Probe) -> bool:
        return not probe.is_folder and probe.file_name.lower().endswith(PICKLE_SUFFIXES)

    def reason(self, probe: Probe) -> str:
        return "single-file pickle checkpoints are not supported; convert to safetensors"

    def load(
        self, path: Path, base: DiffusionModel | None, allow_pickle: bool = False
    ) -> DiffusionModel:
        from dmsec.models.safe_load import load_state_dict

        load_state_dict(path, allow_pickle=allow_pickle)  # refuses unless opted in, scanned clean
        raise CheckpointError(path, self.reason(Probe()))


class NotDiffusion(CheckpointFormat):
    """Safetensors weights that match no other row; `others` are the rows it must not match."""

    name = "not-diffusion"
    title = "no diffusion weights"
    kind = "none"

    def __init__(self, others: tuple[CheckpointFormat, ...]) -> None:
        self.others = others

    def matches(self, probe: Probe) -> bool:
        return not probe.is_folder and not any(f.matches(probe) for f in self.others)

    def reason(self, probe: Probe) -> str:
        keys = probe.tensor_names
        example = ", ".join(repr(k) for k in sorted(keys)[:2]) or "no tensors"
        return (
            f"not diffusion weights: {len(keys)} tensors in no UNet, LoRA or Stable Diffusion "
            f"layout (e.g. {example})"
        )
