"""Checkpoint formats: one module per format, one ordered table, detection once.

`FORMATS` lists every layout the scan knows, supported or not, the way diffusers keeps its
checkpoint detection as data: each row (`base.CheckpointFormat`) says what it is, whether a
`Probe` matches it, the family its header tells, and how it loads. Rows are written so that at
most one matches a probe (tests/models/test_formats.py checks every fixture layout); the table's
order only decides between rows that should never both match.

| row | module | kind |
|---|---|---|
| diffusers folder | `diffusers_folder` | model |
| LyCORIS LoHa, LoKr, Tucker LoCon, DoRA, OFT, (IA)^3, GLoRA, full-difference | `unsupported` | unsupported |
| kohya / LyCORIS LoRA and LoCon | `kohya` | adapter |
| PEFT / diffusers LoRA (incl. `save_lora_weights`) | `peft_lora` | adapter |
| single-file checkpoint, original SD layout | `ldm` | full |
| diffusers UNet weights in one file | `diffusers_unet` | full |
| pickle-format single file | `other` | refused |
| safetensors of no diffusion model | `other` | none |

`detect_path` (a local file or folder) and `detect_header` (a safetensors header, e.g. read by a
hub listing) return a `Detected`: the row, the path, the header and the reason; it travels with
the file to the loader and the family check. Adding a format is one module with a
`CheckpointFormat` subclass and one line in `FORMATS` (docs/formats.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dmsec.errors import CheckpointError
from dmsec.models.formats.base import (
    CheckpointFormat,
    Detected,
    NotDiffusionWeightsError,
    Probe,
    RefKind,
    UnsupportedAdapterError,
    tensor_names,
)
from dmsec.models.formats.diffusers_folder import DiffusersFolder
from dmsec.models.formats.diffusers_unet import DiffusersUnet
from dmsec.models.formats.kohya import KohyaLora
from dmsec.models.formats.ldm import LdmCheckpoint
from dmsec.models.formats.other import NotDiffusion, PickleFile
from dmsec.models.formats.peft_lora import PeftLora
from dmsec.models.formats.unsupported import VARIANTS
from dmsec.models.weights import LORA_WEIGHTS_NAME

_DIFFUSION: tuple[CheckpointFormat, ...] = (
    DiffusersFolder(),
    *VARIANTS,
    KohyaLora(),
    PeftLora(),
    LdmCheckpoint(),
    DiffusersUnet(),
    PickleFile(),
)
FORMATS: tuple[CheckpointFormat, ...] = (*_DIFFUSION, NotDiffusion(_DIFFUSION))

__all__ = [
    "FORMATS",
    "CheckpointFormat",
    "Detected",
    "NotDiffusionWeightsError",
    "Probe",
    "UnsupportedAdapterError",
    "detect_header",
    "detect_path",
    "detect_probe",
    "format_named",
    "matching",
    "ref_kind_of_files",
    "tensor_names",
]


def matching(probe: Probe) -> list[CheckpointFormat]:
    """Every row that matches `probe` (one, for every layout the tests know)."""
    return [f for f in FORMATS if f.matches(probe)]


def detect_probe(probe: Probe, path: Path | None = None, header: Mapping[str, Any] | None = None) -> Detected:  # fmt: skip
    """The first row matching `probe`, with its reason (see the module docstring)."""
    for fmt in FORMATS:
        if fmt.matches(probe):
            return Detected(fmt, path, dict(header or {}), fmt.reason(probe))
    raise CheckpointError(path or "checkpoint", "matches no checkpoint format")


def detect_header(header: Mapping[str, Any], path: Path | None = None) -> Detected:
    """The format of a weights file from its safetensors header (tensor names, never data)."""
    name = path.name if path is not None else ".safetensors"
    return detect_probe(Probe(tensor_names(header), None, name), path, header)


def _folder_target(folder: Path) -> Path:
    """The file or folder a checkpoint folder loads from: its LoRA weights (no `unet/`), the
    folder itself (diffusers markers), or its one `.safetensors` of any name (beside a card)."""
    lora_file = folder / LORA_WEIGHTS_NAME
    if lora_file.exists() and not (folder / "unet").exists():
        return lora_file
    names = tuple(p.name for p in folder.iterdir())
    if DiffusersFolder().matches(Probe(folder_files=names)):
        return folder
    weights = sorted(folder.glob("*.safetensors"))
    if len(weights) == 1:
        return weights[0]
    raise CheckpointError(
        folder,
        f"not a diffusers model folder (no model_index.json or unet/) and not one weights file "
        f"({len(weights)} top-level .safetensors files)",
    )


def detect_path(path: str | Path) -> Detected:
    """The format of a local checkpoint (file or folder), told once; reads headers only."""
    from dmsec.models.safe_load import read_safetensors_header

    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "does not exist")
    if path.is_dir():
        target = _folder_target(path)
        if target.is_dir():
            names = tuple(p.name for p in target.iterdir())
            return detect_probe(Probe(folder_files=names), target)
        path = target
    if path.name.lower().endswith(".safetensors"):
        return detect_header(read_safetensors_header(path), path)
    detected = detect_probe(Probe(file_name=path.name), path)
    if detected.format.kind == "none":
        raise CheckpointError(path, f"unknown checkpoint format {path.suffix!r}")
    return detected


def format_named(name: str) -> CheckpointFormat:
    """The row called `name` (e.g. "kohya-lora")."""
    for fmt in FORMATS:
        if fmt.name == name:
            return fmt
    raise KeyError(f"unknown checkpoint format {name!r}; known: {[f.name for f in FORMATS]}")


def ref_kind_of_files(file_names: Sequence[str]) -> RefKind | None:
    """How a hub repo is filed from its file names alone: "lora" when some file has a name an
    adapter format is conventionally saved as (any folder), "full" when the repo has a folder
    format's marker file (at its root), else None."""
    base_names = {n.rsplit("/", 1)[-1] for n in file_names}
    for fmt in FORMATS:
        if fmt.kind == "adapter" and base_names & set(fmt.file_names):
            return Detected(fmt).ref_kind
    for fmt in FORMATS:
        if fmt.kind == "model" and set(file_names) & set(fmt.file_names):
            return Detected(fmt).ref_kind
    return None
