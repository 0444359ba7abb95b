"""The hub reads what dmsec's own model writers produce, and the model handles load what it pulls.

The folders are written by `UNet2DHandle.save` and `save_lora` (random-init tiny networks, the
zoo's exact on-disk format), listed by the local source, pulled into the cache, then loaded back
with `load_model` from the pulled snapshot, the LoRA on top of the pulled base.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from dmsec.hub import ListFilter, Puller
from dmsec.hub.local import LocalSource
from dmsec.models.loading import load_model
from dmsec.models.lora import LoraSpec, add_lora, save_lora
from dmsec.models.unet2d import MODEL_CARD, ModelInfo, UNet2DHandle


def test_pulled_zoo_checkpoints_load_as_models(tmp_path: Path) -> None:
    root = tmp_path / "zoo"
    base = UNet2DHandle.random(seed=0, channels=(8, 16, 16))
    base.save(root / "base", ModelInfo(kind="base", null_class=10, instance_class=11))
    full = copy.deepcopy(base)
    with torch.no_grad():
        for p in full.network.parameters():
            p.add_(0.01)
    full.save(root / "full-7a-light", ModelInfo(kind="full", base_model="../base", null_class=10))
    lora = copy.deepcopy(base)
    add_lora(lora.network, LoraSpec(rank=2, alpha=2.0), init_random=True)
    save_lora(lora.network, root / "lora-9a-light", base_model="../base")
    info = ModelInfo(kind="lora", base_model="../base", null_class=10)
    (root / "lora-9a-light" / MODEL_CARD).write_text(info.to_json())
    (root / "images" / "lora-9a").mkdir(parents=True)
    (root / "images" / "lora-9a" / "train_00.png").write_bytes(b"\x89PNG")
    (root / "manifest.json").write_text("{}")

    source = LocalSource(root)
    refs = {
        r.repo_id: r for r in source.list(ListFilter(kinds=frozenset({"base", "full", "lora"})))
    }
    assert {k: (r.kind, r.base_model) for k, r in refs.items()} == {
        "base": ("base", None),
        "full-7a-light": ("full", "base"),
        "lora-9a-light": ("lora", "base"),
    }
    assert refs["full-7a-light"].extra["null_class"] == "10"

    puller = Puller(tmp_path / "cache")
    pulled = {k: puller.pull(source, r) for k, r in refs.items()}
    assert all(r.ok for r in pulled.values()), {k: r.error for k, r in pulled.items()}
    base_path = pulled["base"].path
    assert base_path is not None
    x = torch.randn(2, 1, 16, 16)
    t = torch.tensor([5, 50])
    loaded_full = load_model(pulled["full-7a-light"].path)  # type: ignore[arg-type]
    loaded_lora = load_model(pulled["lora-9a-light"].path, base=base_path)  # type: ignore[arg-type]
    loaded_base = load_model(base_path)

    def eps(model: object) -> torch.Tensor:
        cond = model.encode_condition([3, None])  # type: ignore[attr-defined]
        return model.predict_noise(x, t, cond)  # type: ignore[attr-defined]

    with torch.no_grad():
        assert torch.allclose(eps(loaded_base), eps(base), atol=1e-5)
        assert torch.allclose(eps(loaded_full), eps(full), atol=1e-5)
        assert not torch.allclose(eps(loaded_lora), eps(loaded_base))  # the adapter is applied
        assert torch.allclose(eps(loaded_lora), eps(lora), atol=1e-5)  # and it is the same one
