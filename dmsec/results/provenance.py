"""What a results folder records about how a scan ran: package versions, platform, seeds."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

PACKAGES = ("dmsec", "torch", "diffusers", "transformers", "peft", "ray", "pyarrow", "duckdb",
            "faiss-cpu", "faiss-gpu-cu12", "numpy", "pillow", "pdqhash", "safetensors")  # fmt: skip


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a scan's results depend on (absent ones left out)."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def seeds_of(config: Any) -> dict[str, Any]:
    """Every seed a scan's results depend on, with what each one drives."""
    n = config.extract.n_samples
    return {
        "extract.seed": config.extract.seed,
        "extract.generation_seeds": f"generation i starts from seed {config.extract.seed} + i, i < {n}",
        "clustering.seed": 0,
        "authenticate.seed": config.authenticate.seed,
    }
