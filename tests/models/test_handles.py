"""Model handles: conditions, noise prediction, round trips through the on-disk formats."""

from __future__ import annotations

import torch

from dmsec.errors import ConfigError
from dmsec.models.loading import load_model
from dmsec.models.lora import LoraSpec, adapters_disabled, add_lora, save_lora
from dmsec.models.pair import FullPair, LoraPair, make_pair


def _inputs(handle, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *handle.sample_shape), generator=g)
    t = torch.randint(0, handle.num_train_timesteps, (n,), generator=g)
    return x, t


def test_unet2d_conditions_and_null_class(tiny_unet):
    cond = tiny_unet.encode_condition([1, None, 11])
    assert cond.tolist() == [1, tiny_unet.info.null_class, 11]
    try:
        tiny_unet.encode_condition([12])
    except ConfigError as exc:
        assert "[0, 12)" in str(exc)
    else:
        raise AssertionError("out-of-range class accepted")


def test_unet2d_folder_round_trip(tiny_unet, tmp_path):
    x, t = _inputs(tiny_unet)
    cond = tiny_unet.encode_condition([3] * 4)
    with torch.no_grad():
        expected = tiny_unet.predict_noise(x, t, cond)
        tiny_unet.save(tmp_path / "m")
        loaded = load_model(tmp_path / "m")
        assert torch.equal(loaded.predict_noise(x, t, cond), expected)
        assert loaded.info.null_class == tiny_unet.info.null_class


def test_single_safetensors_file_needs_base_and_loads(tiny_unet, tmp_path):
    from dmsec.models.unet2d import UNet2DHandle

    base_dir = tiny_unet.save(tmp_path / "base")
    other = UNet2DHandle.random(seed=1, channels=(8, 16), image_size=8)
    path = other.save_single_file(tmp_path / "ft.safetensors")
    x, t = _inputs(tiny_unet)
    cond = other.encode_condition([2] * 4)
    with torch.no_grad():
        loaded = load_model(path, base=base_dir)
        assert torch.equal(loaded.predict_noise(x, t, cond), other.predict_noise(x, t, cond))


def test_lora_adapter_off_reproduces_base_exactly(tiny_unet, tmp_path):
    import copy

    x, t = _inputs(tiny_unet)
    cond = tiny_unet.encode_condition([11] * 4)
    base_dir = tiny_unet.save(tmp_path / "base")
    ft = copy.deepcopy(tiny_unet)
    add_lora(ft.network, LoraSpec(rank=4), init_random=True)
    lora_file = save_lora(ft.network, tmp_path / "lora", base_model=str(base_dir))
    loaded = load_model(lora_file, base=base_dir)
    with torch.no_grad():
        base_eps = tiny_unet.predict_noise(x, t, cond)
        on = loaded.predict_noise(x, t, cond)
        with adapters_disabled(loaded.network):
            off = loaded.predict_noise(x, t, cond)
    assert torch.equal(off, base_eps)
    assert (on - base_eps).abs().max() > 1e-3, "the adapter must change the prediction"
    assert torch.allclose(on, ft.predict_noise(x, t, cond), atol=1e-6)


def test_lora_pair_one_forward_equals_two_networks(tiny_unet):
    import copy

    ft = copy.deepcopy(tiny_unet)
    add_lora(ft.network, LoraSpec(rank=4), init_random=True)
    lora_pair = make_pair(tiny_unet, ft)
    assert isinstance(lora_pair, LoraPair)
    full_pair = FullPair(tiny_unet, ft)
    x, t = _inputs(tiny_unet)
    cp, cf = tiny_unet.encode_condition([None] * 4), tiny_unet.encode_condition([11] * 4)
    with torch.no_grad():
        with adapters_disabled(ft.network):
            want_pre = ft.predict_noise(x, t, cp)
        want_ft = ft.predict_noise(x, t, cf)
        got_pre, got_ft = lora_pair.predict_pair(x, x, t, cp, cf)
        full_pre, full_ft = full_pair.predict_pair(x, x, t, cp, cf)
    torch.testing.assert_close(got_pre, want_pre, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_ft, want_ft, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full_pre, want_pre, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full_ft, got_ft, atol=1e-5, rtol=1e-5)


def test_stable_diffusion_handle_mechanics(tiny_sd, tmp_path):
    x, t = _inputs(tiny_sd, n=2)
    cond = tiny_sd.encode_condition(["a photo of sks dog", None])
    assert cond.shape[0] == 2
    assert not torch.equal(cond[0], cond[1]), "prompt and ∅ must encode differently"
    with torch.no_grad():
        eps = tiny_sd.predict_noise(x, t, cond)
        assert eps.shape == x.shape
        images = tiny_sd.decode(x)
        assert images.shape == (2, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
        assert tiny_sd.encode_images(images).shape == x.shape
        tiny_sd.save(tmp_path / "sd")
        loaded = load_model(tmp_path / "sd")
        assert torch.equal(
            loaded.predict_noise(x, t, loaded.encode_condition(["a photo of sks dog", None])), eps
        )


def test_stable_diffusion_lora_pair(tiny_sd):
    import copy

    ft = copy.deepcopy(tiny_sd)
    add_lora(
        ft.network,
        LoraSpec(rank=4, target_modules=("to_q", "to_k", "to_v", "to_out.0")),
        init_random=True,
    )
    pair = make_pair(tiny_sd, ft)
    x, t = _inputs(tiny_sd, n=2)
    cp, cf = pair.encode_pre([None, None]), pair.encode_ft(["a photo of sks dog"] * 2)
    with torch.no_grad():
        pre, fte = pair.predict_pair(x, x, t, cp, cf)
        torch.testing.assert_close(pre, tiny_sd.predict_noise(x, t, cp), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fte, ft.predict_noise(x, t, cf), atol=1e-5, rtol=1e-5)
        assert (fte - tiny_sd.predict_noise(x, t, cf)).abs().max() > 1e-3
