"""Single-file checkpoints in the original SD layout: written here, read by diffusers' converters.

The writer (`dmsec.zoo.formats`) is the one hand-written map (diffusers ships only the reading
direction), so it is cross-checked on the same file: diffusers' `convert_ldm_*` must put every
tensor back where it came from, on the art zoo's architecture and the tiny SD's. Then the loader:
a single-file copy of a fine-tune and its diffusers folder must predict the same noise.
"""

from __future__ import annotations

import copy

import pytest
import torch
from format_fixtures import PROMPT, write_card, write_sd2_checkpoint, write_sdxl_checkpoint

from dmsec.errors import CheckpointError
from dmsec.models.family import FamilyMismatchError
from dmsec.models.loading import load_model, load_pair
from dmsec.models.pair import FullPair
from dmsec.models.safe_load import load_state_dict
from dmsec.zoo.art_model import ArtModelConfig, build_art_model, build_tokenizer
from dmsec.zoo.formats import (
    unet_to_ldm,
    write_single_file_checkpoint,
    write_single_file_copy,
)


def _art_model():
    """The art zoo's architecture (UNet (32, 64, 128), cross-attention in the two lower levels)."""
    tokenizer = build_tokenizer(["a sks emoji in the style of twemoji"], max_length=8)
    return build_art_model(ArtModelConfig(), tokenizer, seed=0)


def _perturbed(handle, seed: int = 1):
    """A 'full fine-tune': every weight of every component moved a little."""
    g = torch.Generator().manual_seed(seed)
    out = copy.deepcopy(handle)
    with torch.no_grad():
        for module in out.modules():
            for p in module.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=g))
    return out


@pytest.mark.parametrize("which", ["art", "tiny"])
def test_diffusers_converters_read_the_written_layout_back_tensor_for_tensor(
    which, tiny_sd, tmp_path
):
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    model = _art_model() if which == "art" else tiny_sd
    path = write_single_file_checkpoint(
        model.network, tmp_path / "m.safetensors", vae=model.vae, text_encoder=model.text_encoder
    )
    state = load_state_dict(path)
    assert all(k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer.text_model.")) for k in state)  # fmt: skip
    assert any(".input_blocks." in k for k in state) and any(".mid.attn_1.q.weight" in k for k in state)  # fmt: skip
    back = {
        "network": convert_ldm_unet_checkpoint(state, dict(model.network.config)),
        "vae": convert_ldm_vae_checkpoint(state, dict(model.vae.config)),
        "text_encoder": {
            k.removeprefix("text_model."): v for k, v in convert_ldm_clip_checkpoint(state).items()
        },  # fmt: skip
    }
    for name, module in (("network", model.network), ("vae", model.vae), ("text_encoder", model.text_encoder)):  # fmt: skip
        own = {k: v for k, v in module.state_dict().items() if not k.endswith("position_ids")}
        assert set(back[name]) == set(own), name
        assert all(torch.equal(back[name][k], own[k]) for k in own), name


def test_art_unet_layout_matches_the_original_numbering():
    """Levels without attention shift the sampler slot: the original's `output_blocks.N.1.conv`."""
    names = set(unet_to_ldm(_art_model().network))
    prefix = "model.diffusion_model."
    assert {f"{prefix}input_blocks.2.0.op.weight", f"{prefix}input_blocks.4.0.op.weight"} <= names
    assert f"{prefix}input_blocks.3.1.proj_in.weight" in names  # level 1 attends
    assert not any(n.startswith(f"{prefix}input_blocks.1.1.") for n in names)  # level 0 does not
    assert f"{prefix}output_blocks.1.2.conv.weight" in names  # level 2 (attends): slot 2
    assert f"{prefix}output_blocks.5.1.conv.weight" not in names  # last level: no upsampler
    assert f"{prefix}middle_block.1.transformer_blocks.0.attn2.to_k.weight" in names


@pytest.mark.parametrize("unet_only", [False, True])
def test_single_file_copy_predicts_like_its_diffusers_folder(unet_only, tiny_sd, tmp_path):
    tiny_sd.save(tmp_path / "base")
    ft = _perturbed(tiny_sd)
    ft.save(tmp_path / "ft")
    write_card(tmp_path / "ft", kind="full")
    write_single_file_copy(tmp_path / "ft", tmp_path / "ft-single", unet_only=unet_only)
    folder, single = load_model(tmp_path / "ft"), load_model(tmp_path / "ft-single")
    assert single.info.kind == "full" and single.info.instance_prompt == PROMPT
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(2, 4, 16, 16, generator=g), torch.tensor([20, 700])
    images = torch.rand(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        cond = folder.encode_condition([PROMPT, None])
        cond_single = single.encode_condition([PROMPT, None])
        assert torch.equal(cond_single, cond) != unet_only  # UNet only: the base's text encoder
        eps = folder.predict_noise(x, t, cond)
        assert torch.allclose(single.predict_noise(x, t, cond), eps, atol=1e-5)
        latents = single.encode_images(images)
        assert torch.equal(latents, folder.encode_images(images)) != unet_only
    pair = load_pair(tmp_path / "ft-single")  # the card names ../base
    assert isinstance(pair, FullPair)
    with torch.no_grad():
        eps_pre, eps_ft = pair.predict_pair(x, x, t, tiny_sd.encode_condition([PROMPT, None]), cond)
    assert torch.allclose(eps_pre, tiny_sd.predict_noise(x, t, tiny_sd.encode_condition([PROMPT, None])), atol=1e-5)  # fmt: skip
    assert torch.allclose(eps_ft, eps, atol=1e-5)


@pytest.mark.parametrize(
    ("writer", "family"), [(write_sdxl_checkpoint, "SDXL"), (write_sd2_checkpoint, "SD 2.x")]
)  # fmt: skip
def test_a_checkpoint_of_another_family_is_a_mismatch(writer, family, tiny_sd, tmp_path):
    writer(tmp_path / "x.safetensors")
    with pytest.raises(FamilyMismatchError, match=f"this checkpoint is for {family}"):
        load_model(tmp_path / "x.safetensors", base=tiny_sd)


def test_a_single_file_missing_a_unet_tensor_is_an_error_naming_it(tiny_sd, tmp_path):
    from safetensors.torch import save_file

    path = write_single_file_checkpoint(tiny_sd.network, tmp_path / "x.safetensors")
    state = load_state_dict(path)
    state.pop("model.diffusion_model.out.2.weight")
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match=r"1 missing \(e\.g\. \['conv_out.weight'\]\)"):
        load_model(path, base=tiny_sd)
