"""What a checkpoint format is: the interface every row of the formats table implements.

A format says what it is (`name`, `title`, `kind`: "model" a standalone diffusers folder, "full"
full weights applied to a base, "adapter" an adapter injected into a base, "unsupported" an
adapter variant recognised but not loadable, "refused" a file refused on sight (pickle), "none"
no diffusion weights), whether a `Probe` (a file's tensor
names, or a folder's file names) matches it, the family its header names, and how it loads.
Detection happens once (`dmsec.models.formats.detect_path` / `detect_header`); the `Detected`
result then travels with the file, so callers read `detected.format.kind` or call its methods
and never compare format names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dmsec.errors import CheckpointError
from dmsec.models.family import Family

if TYPE_CHECKING:
    from dmsec.models.base import DiffusionModel

FormatKind = Literal["model", "full", "adapter", "unsupported", "refused", "none"]
RefKind = Literal["full", "lora"]
#: how a hub listing files each kind of format: "lora", "full", or None (listed as skipped)
REF_KINDS: dict[str, RefKind | None] = {
    "model": "full", "full": "full", "adapter": "lora", "unsupported": "lora", "refused": None,
    "none": None,
}  # fmt: skip


class NotDiffusionWeightsError(CheckpointError):
    """A readable weights file that holds no diffusion model or adapter: skipped, not an error."""


class UnsupportedAdapterError(CheckpointError):
    """An adapter variant this version recognises but cannot load (LoHa, LoKr, DoRA, ...)."""


def tensor_names(header: Mapping[str, Any]) -> tuple[str, ...]:
    """The tensor names of a safetensors header (or of a state dict)."""
    return tuple(k for k in header if k != "__metadata__")


@dataclass(frozen=True)
class Probe:
    """What detection looks at: a weights file's tensor names, or (`folder_files` not None) the
    top-level file and folder names of a checkpoint folder; `file_name` is the file's own name."""

    tensor_names: tuple[str, ...] = ()
    folder_files: tuple[str, ...] | None = None
    file_name: str = ""

    @property
    def is_folder(self) -> bool:
        return self.folder_files is not None


class CheckpointFormat:
    """One row of the formats table; subclasses set the attributes and override what applies."""

    name: str = ""
    title: str = ""
    kind: FormatKind = "none"
    #: file names hubs conventionally give this format (the HF source classifies repos by them)
    file_names: tuple[str, ...] = ()

    def matches(self, probe: Probe) -> bool:
        """Whether `probe` is in this format (rows are written so that at most one matches)."""
        raise NotImplementedError

    def reason(self, probe: Probe) -> str:
        """For "unsupported" and "none" formats: why the file cannot be scanned, in words."""
        return ""

    def family(self, header: Mapping[str, Any]) -> Family:
        """The base-model family the file's header tells (shapes and names only)."""
        return Family()

    @property
    def needs_base(self) -> bool:
        """Whether loading applies the file onto a base model (adapters, full weights)."""
        return self.kind in ("full", "adapter")

    def load(
        self, path: Path, base: DiffusionModel | None, allow_pickle: bool = False
    ) -> DiffusionModel:
        """The model `path` holds: for `needs_base` formats, `base` (a copy the caller owns)
        with the file's weights applied in place; else the model built from `path` alone."""
        raise CheckpointError(path, f"{self.title} cannot be loaded")

    def __repr__(self) -> str:
        return f"<format {self.name}: {self.kind}>"


@dataclass(frozen=True)
class Detected:
    """A checkpoint's format, told once: the row, the file or folder it was told from, the
    header it was read from (files), and for "unsupported" / "none" the reason in words."""

    format: CheckpointFormat
    path: Path | None = None
    header: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    reason: str = ""

    @property
    def is_adapter(self) -> bool:
        """An adapter (loadable or not) rather than a full model."""
        return self.format.kind in ("adapter", "unsupported")

    @property
    def ref_kind(self) -> RefKind | None:
        """How a hub listing files it: "lora", "full" or None (no diffusion weights)."""
        return REF_KINDS[self.format.kind]

    def family(self) -> Family:
        """The family the header tells (`Family()` when it tells nothing)."""
        return self.format.family(self.header)

    def check_loadable(self) -> None:
        """Raise `UnsupportedAdapterError` / `NotDiffusionWeightsError` naming the reason."""
        where = self.path if self.path is not None else "weights"
        if self.format.kind == "unsupported":
            raise UnsupportedAdapterError(where, self.reason)
        if self.format.kind == "none":
            raise NotDiffusionWeightsError(where, self.reason)


def any_key(keys: Sequence[str], prefixes: tuple[str, ...]) -> bool:
    """Whether some key starts with one of `prefixes`."""
    return any(k.startswith(prefixes) for k in keys)
