"""Base-model families: from headers (tiny files holding only the telling tensors), configs, hubs."""

from __future__ import annotations

from pathlib import Path

import pytest
from format_fixtures import (
    write_bert_like,
    write_flux_kohya_lora,
    write_loha,
    write_sd1_checkpoint,
    write_sd1_peft_lora,
    write_sd2_checkpoint,
    write_sd2_kohya_lora,
    write_sdxl_checkpoint,
    write_sdxl_kohya_lora,
)

from dmsec.models.family import (
    Family,
    FamilyMismatchError,
    check_compatible,
    family_from_hub,
    family_of_handle,
)
from dmsec.models.formats import detect_path, format_named


@pytest.mark.parametrize(
    ("writer", "fmt", "family", "width"),
    [
        (write_sd1_checkpoint, "ldm-checkpoint", "sd1", 768),
        (write_sd2_checkpoint, "ldm-checkpoint", "sd2", 1024),
        (write_sdxl_checkpoint, "ldm-checkpoint", "sdxl", 2048),
        (write_sd1_peft_lora, "peft-lora", "sd1", 768),
        (write_sd2_kohya_lora, "kohya-lora", "sd2", 1024),
        (write_sdxl_kohya_lora, "kohya-lora", "sdxl", 2048),
        (write_flux_kohya_lora, "kohya-lora", "flux", 4096),
        (write_loha, "loha", "unknown", None),
    ],
)  # fmt: skip
def test_family_from_the_header_alone(writer, fmt, family, width, tmp_path: Path):
    path = writer(tmp_path / "w.safetensors")
    detected = detect_path(path)  # the header's names, dtypes and shapes: no tensor data is read
    found = detected.family()
    assert (detected.format.name, found.name, found.cross_attention_dim) == (fmt, family, width)
    assert found.evidence or family == "unknown"


def test_non_diffusion_weights_are_told_apart_with_a_reason(tmp_path: Path):
    detected = detect_path(write_bert_like(tmp_path / "pytorch_lora_weights.safetensors"))
    assert detected.format is format_named("not-diffusion") and not detected.is_adapter
    assert detected.reason.startswith("not diffusion weights: 3 tensors")
    assert "'bert.embeddings.word_embeddings.weight'" in detected.reason


def test_family_of_loaded_bases(tiny_sd, tiny_unet):
    assert family_of_handle(tiny_sd) == Family("unknown", 32, "UNet config")  # SD-shaped, width 32
    assert family_of_handle(tiny_unet).name == "unet2d"


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("SD 1.5", "sd1"), ("SD 1.4", "sd1"), ("SD 1.5 LCM", "sd1"), ("SD 2.1 768", "sd2"),
        ("SD 2.0", "sd2"), ("SDXL 1.0", "sdxl"), ("SDXL Turbo", "sdxl"), ("Pony", "sdxl"),
        ("Illustrious", "sdxl"), ("NoobAI", "sdxl"), ("SD 3.5 Large", "sd3"), ("SD 3", "sd3"),
        ("Flux.1 D", "flux"), ("Flux.1 S", "flux"), ("Other", None), ("Hunyuan 1", None),
        ("runwayml/stable-diffusion-v1-5", "sd1"), ("CompVis/stable-diffusion-v1-4", "sd1"),
        ("stabilityai/stable-diffusion-2-1-base", "sd2"),
        ("stabilityai/stable-diffusion-xl-base-1.0", "sdxl"),
        ("stabilityai/stable-diffusion-xl-refiner-1.0", "sdxl-refiner"),
        ("stabilityai/stable-diffusion-3-medium-diffusers", "sd3"),
        ("black-forest-labs/FLUX.1-dev", "flux"), ("someone/my-model", None), ("", None),
    ],
)  # fmt: skip
def test_family_from_hub_metadata(name, family):
    assert family_from_hub(name) == family


def test_compatibility_rules():
    sd1, sdxl = Family("sd1", 768), Family("sdxl", 2048)
    art, tiny = Family("unknown", 64), Family("unknown", 32)
    check_compatible("x", sd1, Family("sd1", 768))
    check_compatible("x", Family(), sd1)  # a file that tells nothing is not refused
    check_compatible("x", art, Family("unknown", 64))
    for what, base in [(sdxl, sd1), (art, tiny), (sd1, tiny), (Family("flux"), art),
                       (art, Family("unet2d"))]:  # fmt: skip
        with pytest.raises(FamilyMismatchError, match="base-model family mismatch"):
            check_compatible("x", what, base)
