"""A local hub mixing every layout hubs carry, the hostile files, and files that are no model.

Listed from headers only (kinds, families, skip reasons), then scanned end to end on the tiny SD:
one `checkpoints` row per file or folder, with the status each deserves.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from hub_builders import (
    write_lying_header,
    write_malicious_pickle,
    write_truncated_safetensors,
)
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
from format_fixtures import (  # noqa: E402
    lora_finetune,
    write_bert_like,
    write_card,
    write_loha,
    write_sdxl_checkpoint,
    write_sdxl_kohya_lora,
)

from dmsec.hub import ListFilter  # noqa: E402
from dmsec.hub.layout import FileEntry, detect_checkpoints  # noqa: E402
from dmsec.hub.local import LocalSource  # noqa: E402
from dmsec.models.formats import NotDiffusionWeightsError  # noqa: E402
from dmsec.models.lora import save_lora  # noqa: E402
from dmsec.scan.records import ScanItem  # noqa: E402
from dmsec.scan.stages.base import Stage  # noqa: E402

# repo_id -> (kind, status, error stage, a phrase the reason must hold)
EXPECTED = {
    "peft-lora": ("lora", "ok", None, None),
    "kohya-locon": ("lora", "ok", None, None),
    "single-file": ("full", "ok", None, None),
    "single-file-unet": ("full", "ok", None, None),
    "diffusers-full": ("full", "ok", None, None),
    "loha": ("lora", "error", "extract", "LyCORIS LoHa"),
    "sdxl-lora": ("lora", "error", "extract", "this LoRA is for SDXL"),
    "sdxl-checkpoint": ("full", "error", "extract", "this checkpoint is for SDXL"),
    "misfit-lora": ("lora", "error", "extract", "LoRA"),
    "truncated-lora": ("lora", "error", "pull", "truncated"),
    "liar.safetensors": ("lora", "error", "pull", "byte range"),
    "misc/pytorch_lora_weights.safetensors": ("lora", "skipped", "pull", "not diffusion weights"),
    "text-model/model.safetensors": ("full", "skipped", "pull", "not diffusion weights"),
    "evil.ckpt": ("full", "skipped", "pull", "pickle"),
}


def make_mixed_hub(root: Path, base) -> Path:
    """The tiny SD as `base/` and, beside it, one checkpoint per entry of `EXPECTED`."""
    from peft import get_peft_model_state_dict

    from dmsec.zoo.formats import peft_alphas, write_kohya_lora, write_single_file_copy

    base.info = base.info.__class__(kind="base")
    base.save(root / "base")
    lora = lora_finetune(base, seed=1)
    save_lora(lora.network, root / "peft-lora", base_model="../base")
    write_card(root / "peft-lora")
    locon = lora_finetune(base, seed=2, text_encoder=True)
    write_kohya_lora(get_peft_model_state_dict(locon.network), get_peft_model_state_dict(locon.text_encoder),
                     root / "kohya-locon" / "sks_style-v1.safetensors",
                     alpha=peft_alphas(locon.network) | peft_alphas(locon.text_encoder))  # fmt: skip
    write_card(root / "kohya-locon")
    full = copy.deepcopy(base)  # a "full fine-tune": every weight moved a little
    with torch.no_grad():
        for module in full.modules():
            for p in module.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    full.save(root / "diffusers-full")
    write_card(root / "diffusers-full", kind="full")
    write_single_file_copy(root / "diffusers-full", root / "single-file")
    write_single_file_copy(root / "diffusers-full", root / "single-file-unet", unet_only=True)
    write_loha(root / "loha" / "loha.safetensors")
    write_card(root / "loha")
    write_sdxl_kohya_lora(root / "sdxl-lora" / "xl.safetensors")
    write_card(root / "sdxl-lora")
    write_sdxl_checkpoint(root / "sdxl-checkpoint" / "xl.safetensors")
    write_card(root / "sdxl-checkpoint", kind="full")
    (root / "misfit-lora").mkdir()
    torch_state = {"base_model.model.nowhere.lora_A.weight": torch.zeros(4, 7),
                   "base_model.model.nowhere.lora_B.weight": torch.zeros(7, 4)}  # fmt: skip
    from safetensors.torch import save_file

    save_file(torch_state, str(root / "misfit-lora" / "pytorch_lora_weights.safetensors"))
    write_card(root / "misfit-lora")
    write_truncated_safetensors(root / "truncated-lora" / "pytorch_lora_weights.safetensors")
    write_card(root / "truncated-lora")
    write_lying_header(root / "liar.safetensors")
    write_bert_like(root / "misc" / "pytorch_lora_weights.safetensors")
    write_bert_like(root / "text-model" / "model.safetensors")
    (root / "text-model" / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    write_malicious_pickle(root / "evil.ckpt", root.parent / "canary")
    return root


class _ReadLog:
    """A TreeReader over a folder that records every byte range asked for."""

    def __init__(self, root: Path) -> None:
        self.root, self.reads = root, []

    def read_range(self, path: str, start: int, length: int) -> bytes:
        self.reads.append((path, start, length))
        with (self.root / path).open("rb") as f:
            f.seek(start)
            return f.read(length)


def _header_end(path: Path) -> int:
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def test_listing_tells_kinds_families_and_skips_from_headers_only(tmp_path: Path, tiny_sd) -> None:
    hub = make_mixed_hub(tmp_path / "hub", tiny_sd)
    refs = {r.repo_id: r for r in LocalSource(hub).list(ListFilter(kinds=frozenset({"full", "lora"})))}  # fmt: skip
    assert set(refs) == set(EXPECTED)
    assert {k: r.kind for k, r in refs.items()} == {k: v[0] for k, v in EXPECTED.items()}
    skipped = {k for k, v in EXPECTED.items() if v[1] == "skipped" and k != "evil.ckpt"}
    assert {k for k, r in refs.items() if r.skip_reason} == skipped
    assert refs["sdxl-lora"].family == refs["sdxl-checkpoint"].family == "sdxl"
    assert refs["kohya-locon"].family is None  # tiny SD's width 32 is no family's
    assert refs["kohya-locon"].base_model == "base" and not (tmp_path / "canary").exists()
    # detection reads headers (and small JSON files), never tensor data
    files = [p for p in hub.rglob("*") if p.is_file()]
    entries = [FileEntry(p.relative_to(hub).as_posix(), p.stat().st_size) for p in files]
    log = _ReadLog(hub)
    list(detect_checkpoints(entries, log))
    for path, start, length in log.reads:
        if path.endswith(".safetensors"):
            assert start + length <= _header_end(hub / path), path


class _NotDiffusion(Stage):
    name = "extract"

    def process(self, item: ScanItem) -> None:
        raise NotDiffusionWeightsError("x.safetensors", "not diffusion weights: 2 tensors ...")


def test_weights_found_to_be_no_diffusion_model_after_download_are_skipped() -> None:
    ref = {"source": "hf", "repo_id": "a/b", "revision": "r", "kind": "lora", "base_model": "b"}
    (item,) = _NotDiffusion().run([ScanItem(ref=ref, scan_id="s", config_hash="h")])
    assert (item.status, item.error_stage) == ("skipped", "extract")
    assert "not diffusion weights" in (item.error or "")


def _registry(tmp_path: Path) -> Path:
    from dmsec.match import ProtectedArtworkIndex

    paths = []
    for i in range(2):
        pixels = (torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(i)) * 255).byte()
        paths.append(str(tmp_path / f"art_{i}.png"))
        Image.fromarray(pixels.numpy()).save(paths[-1])
    location = tmp_path / "registry"
    registry = ProtectedArtworkIndex.create(location, embedders=["zoo"])
    registry.add(paths, owner="owner", title=paths, source_uri=paths)
    return location


@pytest.mark.slow
def test_scan_of_the_mixed_hub_writes_one_row_per_checkpoint_with_its_status(tmp_path: Path, tiny_sd) -> None:  # fmt: skip
    from dmsec.scan.config import config_from_dict
    from dmsec.scan.local import local_executor
    from dmsec.scan.runner import run_scan

    hub = make_mixed_hub(tmp_path / "hub", tiny_sd)
    config = config_from_dict({
        "source": {"uri": str(hub)}, "registry": {"location": str(_registry(tmp_path))},
        "results": {"out": str(tmp_path / "out")},
        # random-init colour models: the grey space keeps this a test of formats, not of the art
        # space
        "extract": {"n_samples": 4, "steps": 2, "similarity": "zoo", "defaults": "zoo"},
        "methods": {"verifier": None},
        "run": {"executor": "local", "cache_dir": str(tmp_path / "cache")},
    })  # fmt: skip
    summary = run_scan(config, local_executor, echo=lambda _: None)
    rows = pq.read_table(tmp_path / "out" / "checkpoints").to_pylist()
    assert sorted(r["repo_id"] for r in rows) == sorted(EXPECTED)  # one row each
    for row in rows:
        kind, status, stage, phrase = EXPECTED[row["repo_id"]]
        got = (row["kind"], row["status"], row["error_stage"])
        assert got == (kind, status, stage), (row["repo_id"], got, row["error"])
        assert phrase is None or phrase in (row["error"] or ""), (row["repo_id"], row["error"])
    assert summary.counts() == {"ok": 5, "error": 6, "skipped": 3}
    assert not (tmp_path / "canary").exists()


def test_a_base_named_by_family_is_pulled_as_source_bases_maps_it(tmp_path: Path, tiny_sd) -> None:
    """Civitai names the base by family ("SD 1.5"): `source.bases` maps it (or our family name) to a
    base in the source; unmapped, the row says the base is not in the source."""
    import dataclasses

    from dmsec.scan.stages.pull import PullStage

    hub = tmp_path / "hub"
    tiny_sd.info = tiny_sd.info.__class__(kind="base")
    tiny_sd.save(hub / "base")
    save_lora(lora_finetune(tiny_sd).network, hub / "style", base_model="SD 1.5")
    write_card(hub / "style", base="SD 1.5")
    (listed,) = [r for r in LocalSource(hub).list(ListFilter()) if r.repo_id == "style"]
    assert listed.base_model == "SD 1.5"
    by_family = dataclasses.replace(listed, family="sd1")  # as Civitai's listing sets it
    cases = [(listed, ["SD 1.5=base"]), (by_family, ["sdxl=nowhere", "sd1=base"])]
    for ref, bases in cases:
        stage = PullStage(str(hub), cache_dir=str(tmp_path / "cache"), bases=bases)
        (item,) = stage.run([ScanItem(ref=ref.to_dict(), scan_id="s", config_hash="h")])
        assert item.status == "pending" and item.error is None, item.error
        assert (item.base_key or "").split("|")[1] == "base" and Path(item.base_path or "").is_dir()
    for ref, bases in [(listed, []), (by_family, ["sdxl=base"])]:
        stage = PullStage(str(hub), cache_dir=str(tmp_path / "cache"), bases=bases)
        (item,) = stage.run([ScanItem(ref=ref.to_dict(), scan_id="s", config_hash="h")])
        assert (item.status, item.error_stage) == ("error", "pull")
        assert "base model 'SD 1.5': 'SD 1.5' is not in" in (item.error or ""), item.error
