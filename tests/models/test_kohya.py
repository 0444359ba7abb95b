"""kohya / LyCORIS LoRA files: loaded through diffusers' conversion, checked by noise predictions.

The reference is always the same adapter in the PEFT layout (in memory, and as dmsec's own file):
a kohya file of it must predict the same noise on the tiny SD (float tolerance), with the adapter
off giving the base and on the fine-tune. Variants we cannot load must say which they are.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from format_fixtures import (
    PROMPT,
    lora_finetune,
    write_card,
    write_loha,
    write_lokr,
    write_sd2_kohya_lora,
    write_sdxl_kohya_lora,
)
from peft import get_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from safetensors.torch import save_file

from dmsec.models.family import FamilyMismatchError
from dmsec.models.formats import UnsupportedAdapterError
from dmsec.models.loading import load_model, load_pair
from dmsec.models.lora import save_lora
from dmsec.models.pair import LoraPair
from dmsec.zoo.formats import peft_alphas, write_kohya_lora

ATOL = 1e-5


@pytest.fixture()
def hub(tmp_path: Path, tiny_sd) -> Path:
    """A folder with the base model; tests add fine-tunes beside it."""
    tiny_sd.save(tmp_path / "base")
    return tmp_path


def _eps(model, x: torch.Tensor, t: torch.Tensor, prompts: list) -> torch.Tensor:
    with torch.no_grad():
        return model.predict_noise(x, t, model.encode_condition(prompts))


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(3, 4, 16, 16, generator=g),
        torch.tensor([5, 300, 900]),
        [PROMPT, None, "a dog"],
    )


def _kohya_copy(ft, folder: Path, text_encoder: bool = False, name: str = "my-style_v2.safetensors") -> Path:  # fmt: skip
    """`ft`'s adapter as a kohya file of any name beside a card (the art zoo's kohya layout)."""
    unet, te = get_peft_model_state_dict(ft.network), None
    alphas = peft_alphas(ft.network)
    if text_encoder:
        te = get_peft_model_state_dict(ft.text_encoder)
        alphas |= peft_alphas(ft.text_encoder)
    write_kohya_lora(unet, te, folder / name, alpha=alphas)
    write_card(folder)
    return folder


def test_kohya_and_peft_layouts_of_one_lora_predict_the_same_noise(hub, tiny_sd):
    ft = lora_finetune(tiny_sd)  # attention + conv (LoCon) modules, ranks 2-4, alphas 1-8
    save_lora(ft.network, hub / "peft", base_model="../base")
    write_card(hub / "peft")
    _kohya_copy(ft, hub / "kohya")
    x, t, prompts = _inputs()
    peft, kohya = load_model(hub / "peft"), load_model(hub / "kohya")
    reference, base = _eps(ft, x, t, prompts), _eps(tiny_sd, x, t, prompts)
    assert (reference - base).abs().max() > 0.05  # the adapter changes the predictions
    assert torch.allclose(_eps(peft, x, t, prompts), reference, atol=ATOL)
    assert torch.allclose(_eps(kohya, x, t, prompts), reference, atol=ATOL)
    assert kohya.info.kind == "lora" and kohya.info.instance_prompt == PROMPT
    # the same modules are wrapped, with the same ranks
    ranks = {n: m.r["default"] for n, m in ft.network.named_modules() if isinstance(m, LoraLayer)}
    got = {n: m.r["default"] for n, m in kohya.network.named_modules() if isinstance(m, LoraLayer)}
    assert got == ranks and any("conv1" in n for n in got) and len(set(got.values())) == 3


def test_kohya_pair_is_the_base_with_the_adapter_off_and_the_finetune_with_it_on(hub, tiny_sd):
    ft = lora_finetune(tiny_sd, text_encoder=True)
    _kohya_copy(ft, hub / "kohya-te", text_encoder=True)
    pair = load_pair(hub / "kohya-te")  # base named by the card
    assert isinstance(pair, LoraPair)
    assert any(isinstance(m, LoraLayer) for m in pair.model.text_encoder.modules())
    x, t, prompts = _inputs(1)
    with torch.no_grad():
        c_pre, c_ft = pair.encode_pre(prompts), pair.encode_ft(prompts)
        eps_pre, eps_ft = pair.predict_pair(x, x, t, c_pre, c_ft)
    assert torch.allclose(eps_pre, _eps(tiny_sd, x, t, prompts), atol=ATOL)
    assert torch.allclose(eps_ft, _eps(ft, x, t, prompts), atol=ATOL)
    assert not torch.allclose(eps_pre, eps_ft, atol=1e-2)


def test_hand_written_kohya_names_land_on_their_modules_with_alpha_over_rank(hub, tiny_sd):
    """Independent of diffusers' writer: names as kohya's trainer spells them for SD 1.x."""
    g = torch.Generator().manual_seed(3)
    attn = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    conv = "lora_unet_up_blocks_1_resnets_0_conv1"  # LoCon: a 3x3 down, a 1x1 up
    te = "lora_te_text_model_encoder_layers_1_mlp_fc2"
    tensors = {
        f"{attn}.lora_down.weight": torch.randn(2, 32, generator=g),
        f"{attn}.lora_up.weight": torch.randn(16, 2, generator=g),
        f"{attn}.alpha": torch.tensor(1.0),  # scale 1 / 2
        f"{conv}.lora_down.weight": torch.randn(3, 48, 3, 3, generator=g),
        f"{conv}.lora_up.weight": torch.randn(16, 3, 1, 1, generator=g),  # no alpha: scale 1
        f"{te}.lora_down.weight": torch.randn(4, 64, generator=g).half(),
        f"{te}.lora_up.weight": torch.randn(32, 4, generator=g).half(),
        f"{te}.alpha": torch.tensor(8.0),  # scale 2
    }
    (hub / "hand").mkdir()
    save_file(tensors, str(hub / "hand" / "hand.safetensors"))
    write_card(hub / "hand")
    model = load_model(hub / "hand")
    wrapped = {
        "network": {n: m for n, m in model.network.named_modules() if isinstance(m, LoraLayer)},
        "te": {n: m for n, m in model.text_encoder.named_modules() if isinstance(m, LoraLayer)},
    }
    assert set(wrapped["network"]) == {
        "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k", "up_blocks.1.resnets.0.conv1",
    }  # fmt: skip
    assert set(wrapped["te"]) == {"encoder.layers.1.mlp.fc2"}
    for layer, key, scale in [
        (wrapped["network"]["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"], attn, 0.5),
        (wrapped["network"]["up_blocks.1.resnets.0.conv1"], conv, 1.0),
        (wrapped["te"]["encoder.layers.1.mlp.fc2"], te, 2.0),
    ]:  # fmt: skip
        a = layer.lora_A["default"].weight
        b = layer.lora_B["default"].weight * layer.scaling["default"]
        assert torch.equal(a, tensors[f"{key}.lora_down.weight"].float())
        assert torch.allclose(b, tensors[f"{key}.lora_up.weight"].float() * scale)


@pytest.mark.parametrize(
    ("writer", "variant"), [(write_loha, "LoHa"), (write_lokr, "LoKr")]
)  # fmt: skip
def test_lycoris_loha_and_lokr_are_refused_naming_the_variant(hub, writer, variant):
    writer(hub / "lyco" / "style.safetensors")
    write_card(hub / "lyco")
    with pytest.raises(UnsupportedAdapterError, match=rf"LyCORIS {variant} .* not supported"):
        load_model(hub / "lyco")


@pytest.mark.parametrize(
    ("writer", "family"), [(write_sdxl_kohya_lora, "SDXL"), (write_sd2_kohya_lora, "SD 2.x")]
)  # fmt: skip
def test_a_lora_for_another_family_is_a_mismatch_that_names_both(hub, writer, family):
    writer(hub / "other" / "lora.safetensors")
    write_card(hub / "other")
    with pytest.raises(FamilyMismatchError) as info:
        load_model(hub / "other")
    message = str(info.value)
    assert f"this LoRA is for {family}" in message and "cross-attention width 32" in message


def test_hub_metadata_names_the_family_when_the_tensors_do_not(hub, tiny_sd):
    """A LoRA on self-attention only shows no conditioning width; the hub's word is used."""
    ft = lora_finetune(tiny_sd)
    state = {k: v for k, v in get_peft_model_state_dict(ft.network).items() if "attn1" in k}
    write_kohya_lora(state, None, hub / "attn1" / "a.safetensors")
    write_card(hub / "attn1")
    assert load_model(hub / "attn1").info.kind == "lora"
    with pytest.raises(FamilyMismatchError, match="SDXL .*from the hub's metadata"):
        load_model(hub / "attn1", family="sdxl")
