"""The zoo's fine-tunes re-published as hubs publish them, without our card.

What each publication holds, written in our own code from the shapes the tools save:
- `hf-dreambooth`: a diffusers folder with the README.md diffusers' `train_dreambooth.py` writes
  (`save_model_card`: YAML front matter with `license`, `library_name`, `inference`,
  `base_model`, `instance_prompt`, `tags`, then a description);
- `hf-lora`: `pytorch_lora_weights.safetensors` beside the README `train_dreambooth_lora.py`
  writes (the same front matter with the `lora` tag);
- `kohya`: one `.safetensors` file in kohya's layout whose `__metadata__` holds the `ss_*` keys
  sd-scripts' `train_network.py` writes (`ss_sd_model_name`, `ss_network_dim`, ...,
  `ss_tag_frequency` counted from the training captions, `ss_dataset_dirs` with kohya's
  `<repeats>_<words>` folder name);
- `civitai`: the LoRA file as a Civitai download, its model version's JSON (`baseModel`,
  `trainedWords`: the trigger phrase) saved beside it as `<name>.civitai.info`.

Arms (`ARMS`): `discovered` publishes exactly that; `card` adds our `dmsec_model.json` with the
training prompt; `none` removes every prompt a hub would carry (no `instance_prompt`, no
`ss_tag_frequency` / `ss_dataset_dirs`, no `trainedWords`), so the scan falls back to ∅. Every
arm names the base the same way: `base_name` in READMEs and kohya metadata, `civitai_base` as
Civitai's `baseModel`; the scan's base registry (`source.bases`) maps them to the zoo's base.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from dmsec.models.readme import README_NAME

ARMS = ("card", "discovered", "none")
LAYOUTS = ("hf-dreambooth", "hf-lora", "kohya", "civitai")
TRIGGER = "sks"  # the zoo's rare token (dmsec.zoo.art_config.INSTANCE_TOKEN)


def _front_matter(meta: dict[str, Any], body: str) -> str:
    return f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n{body}"


def dreambooth_readme(repo_id: str, base_model: str, instance_prompt: str | None,
                      widget: list[str] | None = None) -> str:  # fmt: skip
    """README.md as `train_dreambooth.py` saves it (None: no `instance_prompt`)."""
    meta: dict[str, Any] = {"license": "creativeml-openrail-m", "library_name": "diffusers",
                            "inference": True, "base_model": base_model}  # fmt: skip
    if instance_prompt:
        meta["instance_prompt"] = instance_prompt
    if widget:
        meta["widget"] = [{"text": t, "output": {"url": f"image_{i}.png"}} for i, t in enumerate(widget)]  # fmt: skip
    meta["tags"] = ["text-to-image", "dreambooth", "diffusers-training", "stable-diffusion",
                    "stable-diffusion-diffusers"]  # fmt: skip
    body = (f"\n# DreamBooth - {repo_id}\n\nThis is a dreambooth model derived from {base_model}. "
            f"The weights were trained on {instance_prompt} using [DreamBooth](https://dreambooth.github.io/).\n")  # fmt: skip
    return _front_matter(meta, body)


def lora_readme(repo_id: str, base_model: str, instance_prompt: str | None) -> str:
    """README.md as `train_dreambooth_lora.py` saves it (LoRA in diffusers' layout)."""
    meta: dict[str, Any] = {"base_model": base_model, "library_name": "diffusers",
                            "license": "creativeml-openrail-m", "inference": True}  # fmt: skip
    if instance_prompt:
        meta["instance_prompt"] = instance_prompt
    meta["tags"] = ["text-to-image", "diffusers", "lora", "diffusers-training", "stable-diffusion",
                    "stable-diffusion-diffusers"]  # fmt: skip
    body = f"\n# LoRA DreamBooth - {repo_id}\n\nThese are LoRA adaption weights for {base_model}.\n"
    return _front_matter(meta, body)


def sd_scripts_metadata(output_name: str, sd_model_name: str, folder: str, captions: list[str],
                        *, repeats: int = 10, dim: int = 8, alpha: float = 8.0) -> dict[str, str]:  # fmt: skip
    """The `__metadata__` sd-scripts writes for a LoRA trained on one dataset folder with these
    captions (tags: split on ",", stripped, lower-cased, counted per folder)."""
    frequency: Counter[str] = Counter()
    for caption in captions:
        frequency.update(t.strip().lower() for t in caption.split(",") if t.strip())
    return {
        "ss_session_id": "1234567890", "ss_training_started_at": "1733390000.0",
        "ss_output_name": output_name, "ss_learning_rate": "0.0001", "ss_text_encoder_lr": "5e-05",
        "ss_unet_lr": "0.0001", "ss_num_train_images": str(len(captions) * repeats),
        "ss_num_reg_images": "0", "ss_num_batches_per_epoch": str(len(captions) * repeats),
        "ss_num_epochs": "1", "ss_max_train_steps": "800", "ss_lr_scheduler": "cosine",
        "ss_network_module": "networks.lora", "ss_network_dim": str(dim),
        "ss_network_alpha": str(alpha), "ss_mixed_precision": "fp16", "ss_v2": "False",
        "ss_base_model_version": "sd_v1", "ss_clip_skip": "None", "ss_seed": "42",
        "ss_sd_model_name": sd_model_name, "ss_resolution": "(512, 512)",
        "ss_optimizer": "torch.optim.adamw.AdamW",
        "ss_tag_frequency": json.dumps({folder: dict(frequency)}),
        "ss_dataset_dirs": json.dumps({folder: {"n_repeats": repeats, "img_count": len(captions)}}),
        "ss_reg_dataset_dirs": json.dumps({}), "sshs_model_hash": "0" * 64, "sshs_legacy_hash": "0" * 8,
    }  # fmt: skip


def trigger_phrase(prompt: str) -> str:
    """What an uploader lists as the trigger: the rare token and the word after it ("sks emoji"),
    or the last three words when it ends the prompt ("style of sks"); the prompt without it."""
    words = prompt.split()
    if TRIGGER not in words:
        return prompt
    i = words.index(TRIGGER)
    return " ".join(words[i : i + 2] if i + 1 < len(words) else words[-3:])


def _weights(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})  # noqa: SIM118


def _card(folder: Path, kind: str, base: str, prompt: str | None) -> None:
    card = {"kind": kind, "base_model": base, "instance_prompt": prompt}
    (folder / "dmsec_model.json").write_text(json.dumps(card, indent=2))


def layouts_of(entry: Any) -> tuple[str, ...]:
    """The layouts a zoo fine-tune is re-published in: full -> hf-dreambooth; a PEFT LoRA ->
    hf-lora and civitai; a kohya LoRA -> kohya."""
    if entry.kind != "lora":
        return ("hf-dreambooth",)
    return ("kohya",) if entry.layout == "kohya" else ("hf-lora", "civitai")


def publish(zoo_root: Path, entry: Any, layout: str, arm: str, hub: Path, base_name: str,
            civitai_base: str) -> str:  # fmt: skip
    """Write `entry` of the zoo at `zoo_root` into `hub` as `layout` publishes it, for `arm`;
    returns the repo id the local source will list it under."""
    if arm not in ARMS or layout not in LAYOUTS:
        raise ValueError(f"`arm` must be one of {ARMS} and `layout` one of {LAYOUTS}; got {arm!r}, {layout!r}")  # fmt: skip
    src = zoo_root / entry.path
    prompt = entry.instance_prompt if arm != "none" else None
    card_prompt = entry.instance_prompt if arm == "card" else None
    name = f"{entry.name}-{layout}"
    folder = hub / name
    folder.mkdir(parents=True)
    if layout == "hf-dreambooth":
        shutil.copytree(src, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("dmsec_model.json"))  # fmt: skip
        (folder / README_NAME).write_text(dreambooth_readme(f"someone/{name}", base_name, prompt))
    elif layout == "hf-lora":
        shutil.copy(src / "pytorch_lora_weights.safetensors", folder)
        (folder / README_NAME).write_text(lora_readme(f"someone/{name}", base_name, prompt))
    elif layout == "kohya":
        (weights,) = [p for p in src.glob("*.safetensors")]
        tensors, _ = _weights(weights)
        meta = sd_scripts_metadata(name, base_name, f"10_{TRIGGER}", [entry.instance_prompt] * len(entry.train_images))  # fmt: skip
        if arm == "none":
            meta = {k: v for k, v in meta.items() if k not in ("ss_tag_frequency", "ss_dataset_dirs")}  # fmt: skip
        save_file(tensors, str(folder / f"{name}.safetensors"), metadata={"format": "pt", **meta})
    else:  # civitai: the file as downloaded, its version's JSON beside it
        tensors, meta = _weights(src / "pytorch_lora_weights.safetensors")
        meta = {k: v for k, v in meta.items() if k == "lora_config"}  # Civitai keeps no base path
        save_file(tensors, str(folder / f"{name}.safetensors"), metadata=meta)
        info: dict[str, Any] = {"id": 1, "name": "v1.0", "baseModel": civitai_base, "files": []}
        if prompt:
            info["trainedWords"] = [trigger_phrase(prompt)]
        (folder / f"{name}.civitai.info").write_text(json.dumps(info))
    if arm == "card":
        base = civitai_base if layout == "civitai" else base_name
        _card(folder, "full" if layout == "hf-dreambooth" else "lora", base, card_prompt)
        return name
    return f"{name}/{name}.safetensors" if layout in ("kohya", "civitai") else name
