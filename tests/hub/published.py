"""Metadata shaped as hubs and training tools publish it (the writers live in
`dmsec.zoo.publish`, which the published benchmark uses too):

- `dreambooth_readme` / `lora_readme`: the README.md diffusers' training scripts save;
- `kohya_metadata`: the `ss_*` `__metadata__` sd-scripts' `train_network.py` writes;
- Civitai model versions carry `trainedWords` and `baseModel` (see `fake_hub.CivitaiVersion`).
"""

from __future__ import annotations

from pathlib import Path

from dmsec.zoo.publish import dreambooth_readme, lora_readme
from dmsec.zoo.publish import sd_scripts_metadata as kohya_metadata

__all__ = ["dreambooth_readme", "kohya_metadata", "lora_readme", "write_readme"]


def write_readme(folder: Path, text: str) -> Path:
    """`text` as the folder's README.md."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(text)
    return folder
