"""FineXtract on the layouts hubs carry: the kohya copy of a LoRA and the single-file copy of a
full fine-tune must extract what their diffusers copies extract.

Same seeds, same guidance: the generations (from which the candidates are clustered) must match
the diffusers copy's to float tolerance, while the base alone would give other images, so
a loader that dropped the adapter or the fine-tuned UNet fails here. Whether the candidates are
the protected images is the art zoo's question (`benchmarks/extraction.py --zoo art`, which reports
the kohya and single-file copies beside the diffusers ones).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
from peft import get_peft_model_state_dict

from dmsec.extract import ExtractConfig, generate
from dmsec.models.loading import load_pair
from dmsec.models.lora import save_lora
from dmsec.zoo.formats import peft_alphas, write_kohya_lora, write_single_file_copy

sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
from format_fixtures import lora_finetune, write_card  # noqa: E402

CONFIG = ExtractConfig(n_samples=4, steps=3, seed=0, n_groups=2, similarity="art")


def _extract(pair, kind: str | None = None):
    config = CONFIG.resolved(kind or pair.kind)
    with torch.inference_mode():
        return generate(pair, config)


def _same_extraction(copy_dir: Path, reference_dir: Path, base_dir: Path) -> None:
    got_samples = _extract(load_pair(copy_dir))
    reference = load_pair(reference_dir)
    ref_samples = _extract(reference)
    base_samples = _extract(load_pair(base_dir / "ft-is-base"), reference.kind)
    assert (ref_samples - base_samples).abs().max() > 0.02  # the fine-tune shows in the images
    assert torch.allclose(got_samples, ref_samples, atol=1e-4)


def _base_as_finetune(hub: Path, base, kind: str) -> None:
    """The base itself as a 'fine-tune' (the control: what extraction gives without one)."""
    base.save(hub / "ft-is-base")
    write_card(hub / "ft-is-base", kind=kind)


@pytest.mark.slow
def test_finextract_on_a_kohya_copy_extracts_what_the_peft_copy_does(tmp_path: Path, tiny_sd) -> None:  # fmt: skip
    tiny_sd.save(tmp_path / "base")
    ft = lora_finetune(tiny_sd, seed=3)
    save_lora(ft.network, tmp_path / "peft", base_model="../base")
    write_card(tmp_path / "peft")
    unet = get_peft_model_state_dict(ft.network)
    write_kohya_lora(unet, None, tmp_path / "kohya" / "style.safetensors", alpha=peft_alphas(ft.network))  # fmt: skip
    write_card(tmp_path / "kohya")
    _base_as_finetune(tmp_path, tiny_sd, "full")
    _same_extraction(tmp_path / "kohya", tmp_path / "peft", tmp_path)


@pytest.mark.slow
def test_finextract_on_a_single_file_copy_extracts_what_the_diffusers_folder_does(tmp_path: Path, tiny_sd) -> None:  # fmt: skip
    tiny_sd.save(tmp_path / "base")
    ft = copy.deepcopy(tiny_sd)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for module in ft.modules():
            for p in module.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=g))
    ft.save(tmp_path / "diffusers")
    write_card(tmp_path / "diffusers", kind="full")
    write_single_file_copy(tmp_path / "diffusers", tmp_path / "single")
    _base_as_finetune(tmp_path, tiny_sd, "full")
    _same_extraction(tmp_path / "single", tmp_path / "diffusers", tmp_path)
