"""What a pull may download: size caps, formats, file patterns. Decided before any byte moves.

Safetensors only by default. A pickle-format weights file (.bin, .ckpt, ...) is never downloaded
when the checkpoint also has safetensors weights; when it has only pickles, the checkpoint is
refused unless `allow_pickle` is set, and then each pickle must pass the static allow-list scan
and load with `torch.load(weights_only=True)` (see `dmsec.models.safe_load`). Configs (.json,
.txt, and the root README.md whose front matter is the hub's model card) have their own small
cap; a README over it is skipped, not a reason to refuse the checkpoint. Declared sizes are checked here; actual sizes again on arrival.

Hub repos often carry the same weights several times; by default only one copy is pulled:
a variant (`x.fp16.safetensors`, `x.non_ema.safetensors`) is skipped when the plain
`x.safetensors` is there, a root-level single-file checkpoint is skipped beside a diffusers
folder (`model_index.json`), and `safety_checker/` (not needed to scan a fine-tune) is excluded.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import asdict, dataclass

from dmsec.errors import ConfigError
from dmsec.hub.ref import CheckpointFile, CheckpointRef
from dmsec.models.safe_load import DEFAULT_MAX_FILE_BYTES, PICKLE_SUFFIXES

WEIGHT_SUFFIX = ".safetensors"
CONFIG_SUFFIXES = (".json", ".txt", ".md")
README = "README.md"


@dataclass(frozen=True)
class PullPolicy:
    """Caps and format rules for pulling checkpoints (all sizes in bytes).

    `include`/`exclude` are fnmatch patterns on a file's path within the checkpoint (`*` spans
    folders); pickle-format files are governed by `allow_pickle`, not by `include`.
    """

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_checkpoint_bytes: int = 2 * DEFAULT_MAX_FILE_BYTES
    max_config_bytes: int = 16 * 2**20
    allow_pickle: bool = False
    include: tuple[str, ...] = ("*.safetensors", "*.json", "*.txt", README)
    exclude: tuple[str, ...] = ("safety_checker/*",)
    one_copy_of_weights: bool = True

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_checkpoint_bytes", "max_config_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"`{name}` must be a positive int; got {value!r}")
        if self.max_checkpoint_bytes < self.max_file_bytes:
            raise ConfigError(
                f"`max_checkpoint_bytes` ({self.max_checkpoint_bytes:,}) must be >= "
                f"`max_file_bytes` ({self.max_file_bytes:,})"
            )
        object.__setattr__(self, "include", tuple(self.include))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        if not self.include:
            raise ConfigError("`include` must hold at least one pattern")

    def cap_for(self, file: CheckpointFile) -> int:
        """The size cap of one file: configs get the small cap, weights the per-file cap."""
        return self.max_config_bytes if file.suffix in CONFIG_SUFFIXES else self.max_file_bytes

    def digest(self) -> str:
        """A short hash of the policy (recorded with each pulled snapshot)."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def select(self, ref: CheckpointRef) -> Selection:
        """Decide which files of `ref` to pull, or why the checkpoint is refused outright."""
        if ref.skip_reason:  # the listing saw it holds no diffusion model: nothing to pull
            return Selection((), (), ref.skip_reason)
        skipped: list[str] = []
        weights: list[CheckpointFile] = []
        pickles: list[CheckpointFile] = []
        configs: list[CheckpointFile] = []
        duplicates = _duplicate_weights(ref) if self.one_copy_of_weights else {}
        for f in ref.files:
            if any(fnmatch.fnmatchcase(f.path, p) for p in self.exclude):
                skipped.append(f"{f.path}: excluded by pattern")
            elif f.path in duplicates:
                skipped.append(f"{f.path}: {duplicates[f.path]}")
            elif f.path == README and f.size is not None and f.size > self.max_config_bytes:
                skipped.append(f"{f.path}: over the config cap; the card is left out")
            elif f.suffix in PICKLE_SUFFIXES:
                pickles.append(f)
            elif not any(fnmatch.fnmatchcase(f.path, p) for p in self.include):
                skipped.append(f"{f.path}: not an included file type")
            elif f.suffix == WEIGHT_SUFFIX:
                weights.append(f)
            elif f.suffix in CONFIG_SUFFIXES:
                configs.append(f)
            else:
                skipped.append(f"{f.path}: not a weights or config format")
        if weights:
            skipped += [f"{f.path}: pickle format, safetensors weights preferred" for f in pickles]
        elif pickles and self.allow_pickle:
            weights = pickles
        elif pickles:
            names = ", ".join(f.path for f in pickles)
            return Selection((), tuple(skipped), _pickle_refusal(names))
        else:
            return Selection((), tuple(skipped), "no weight files (.safetensors) in the checkpoint")
        chosen = tuple(weights + configs)
        for f in chosen:
            if f.size is not None and f.size > self.cap_for(f):
                return Selection(
                    (),
                    tuple(skipped),
                    f"{f.path}: declared size {f.size:,} bytes is over the per-file cap of "
                    f"{self.cap_for(f):,}",
                )
        declared = sum(f.size or 0 for f in chosen)
        if declared > self.max_checkpoint_bytes:
            return Selection(
                (),
                tuple(skipped),
                f"declared size {declared:,} bytes is over the per-checkpoint cap of "
                f"{self.max_checkpoint_bytes:,}",
            )
        return Selection(chosen, tuple(skipped), None)


def _duplicate_weights(ref: CheckpointRef) -> dict[str, str]:
    """Weight files that repeat other weights of the same checkpoint: {path: why skipped}."""
    paths = {f.path for f in ref.files}
    weights = [p for p in paths if p.lower().endswith((WEIGHT_SUFFIX, *PICKLE_SUFFIXES))]
    # a diffusers folder with its components' weights makes a root-level single file a copy
    diffusers = "model_index.json" in paths and any("/" in w for w in weights)
    found: dict[str, str] = {}
    for path in weights:
        stem, _, suffix = path.rpartition(".")
        base, dot, _variant = stem.rpartition(".")
        if dot and "/" not in _variant and f"{base}.{suffix}" in paths:
            found[path] = f"variant of {base}.{suffix}"
        elif "/" not in path and diffusers:
            found[path] = "single-file copy beside a diffusers folder"
    return found


def _pickle_refusal(names: str) -> str:
    return (
        f"only pickle-format weights ({names}); refused because unpickling can run code. "
        "Use a safetensors version, or opt in with allow_pickle after review"
    )


@dataclass(frozen=True)
class Selection:
    """The files a policy lets through, the ones it skipped (with reasons), or a refusal."""

    files: tuple[CheckpointFile, ...]
    skipped: tuple[str, ...]
    refusal: str | None
