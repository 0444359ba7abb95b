"""What an output folder records about how it was made: package versions and the platform.

One function for every record dmsec writes (scan records, protection jobs, registry manifests,
Ray Tune searches), so they all name versions the same way and a run can be replayed.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from importlib import metadata

#: distributions whose versions a result may depend on (absent ones are left out)
PACKAGES = ("dmsec", "torch", "diffusers", "transformers", "peft", "ray", "pyarrow", "duckdb",
            "faiss-cpu", "faiss-gpu-cu12", "numpy", "pillow", "pdqhash", "safetensors")  # fmt: skip


def package_versions(packages: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Python, the platform and the installed version of each distribution in `packages`."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out
