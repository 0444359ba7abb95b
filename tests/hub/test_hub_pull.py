"""Pulling: caps, hashes, formats, pickles, the content-addressed cache, one bad apple at a time."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from hub_builders import (
    make_zoo,
    write_lora,
    write_lora_folder,
    write_lying_header,
    write_malicious_pickle,
    write_truncated_safetensors,
    write_unet_weights,
)

from dmsec.errors import ConfigError
from dmsec.hub import CheckpointFile, CheckpointRef, ListFilter, Puller, PullPolicy, pull
from dmsec.hub.local import LocalSource
from dmsec.hub.pull import PullCheckpoint, PullResult
from dmsec.models.safe_load import load_state_dict

CAP = 4096  # bytes: every good zoo file is far below it


@pytest.fixture
def hostile_zoo(tmp_path: Path) -> tuple[Path, Path]:
    """The zoo plus one of each bad checkpoint; returns (root, canary path)."""
    root = make_zoo(tmp_path / "zoo")
    canary = tmp_path / "canary"
    write_malicious_pickle(root / "evil" / "pytorch_lora_weights.bin", canary)
    (root / "evil" / "dmsec_model.json").write_text('{"kind": "lora", "base_model": "base"}')
    write_malicious_pickle(root / "evil-quiet.ckpt", canary, quiet=True)
    write_unet_weights(root / "huge" / "unet" / "diffusion_pytorch_model.safetensors", numel=4000)
    (root / "huge" / "model_index.json").write_text("{}")
    write_truncated_safetensors(root / "truncated_lora.safetensors")
    write_lying_header(root / "liar" / "lora.safetensors")
    return root, canary


def _pull_all(root: Path, cache: Path, **policy: object) -> dict[str, PullResult]:
    source = LocalSource(root)
    puller = Puller(cache, PullPolicy(max_file_bytes=CAP, max_checkpoint_bytes=4 * CAP, **policy))
    return {r.ref.repo_id: r for r in puller.pull_all(source, source.list())}


@pytest.mark.parametrize("allow_pickle", [False, True], ids=["default", "pickle-opt-in"])
def test_each_bad_checkpoint_fails_alone_and_the_rest_are_pulled(
    hostile_zoo: tuple[Path, Path], tmp_path: Path, allow_pickle: bool
) -> None:
    root, canary = hostile_zoo
    results = _pull_all(root, tmp_path / "cache", allow_pickle=allow_pickle)
    assert {k for k, r in results.items() if r.ok} == {"full-7", "lora-3", "lora-5"}
    errors = {k: r.error or "" for k, r in results.items() if not r.ok}
    assert set(errors) == {
        "evil",
        "evil-quiet.ckpt",
        "huge",
        "truncated_lora.safetensors",
        "liar/lora.safetensors",
    }
    assert all(results[k].status == "refused" and results[k].path is None for k in errors)
    if allow_pickle:  # downloaded, then stopped by the allow-list scan before any unpickling
        assert "posix.system" in errors["evil"] and "outside the allow-list" in errors["evil"]
        assert "io.open" in errors["evil-quiet.ckpt"]  # how pickle spells builtins.open
    else:  # never even downloaded
        assert "only pickle-format weights" in errors["evil"]
        assert "only pickle-format weights" in errors["evil-quiet.ckpt"]
    assert "over the per-file cap of 4,096" in errors["huge"]
    assert errors["huge"].startswith("unet/diffusion_pytorch_model.safetensors: declared size")
    assert "truncated" in errors["truncated_lora.safetensors"]
    assert "F32[4, 4] (64 bytes)" in errors["liar/lora.safetensors"]
    assert not canary.exists()
    # what was pulled loads, and is the same bytes as the source
    lora = results["lora-3"].file_path("pytorch_lora_weights.safetensors")
    assert lora.read_bytes() == (root / "lora-3" / "pytorch_lora_weights.safetensors").read_bytes()
    assert load_state_dict(lora)


class _LyingSource(LocalSource):
    """A local source whose listing declares what we tell it to (a lying hub)."""

    def __init__(self, root: Path, declared: dict[str, CheckpointFile]) -> None:
        super().__init__(root)
        self.declared = declared
        self.fetched: list[str] = []

    def iter_refs(self, flt: ListFilter):  # type: ignore[no-untyped-def]
        for ref in super().iter_refs(flt):
            files = tuple(self.declared.get(f.path, f) for f in ref.files)
            yield CheckpointRef(**{**ref.__dict__, "files": files})

    def fetch(
        self, ref: CheckpointRef, files: Sequence[CheckpointFile], dest: Path, max_file_bytes: int
    ) -> None:
        self.fetched += [f.path for f in files]
        super().fetch(ref, files, dest, max_file_bytes)


def _single_lora(tmp_path: Path, numel_pad: int = 0) -> Path:
    root = tmp_path / "hub"
    write_lora(root / "a.safetensors")
    if numel_pad:
        write_unet_weights(root / "big" / "b.safetensors", numel=numel_pad)
    return root


def test_sha256_mismatch_is_refused(tmp_path: Path) -> None:
    root = _single_lora(tmp_path)
    lie = CheckpointFile("a.safetensors", (root / "a.safetensors").stat().st_size, "0" * 64)
    source = _LyingSource(root, {"a.safetensors": lie})
    (ref,) = source.list()
    result = pull(source, ref, cache=tmp_path / "cache")
    assert result.status == "refused" and "sha256 mismatch" in (result.error or "")
    assert not list((tmp_path / "cache" / "blobs").rglob("*.safetensors"))


def test_size_that_disagrees_with_the_declared_one_is_refused(tmp_path: Path) -> None:
    root = _single_lora(tmp_path)
    source = _LyingSource(root, {"a.safetensors": CheckpointFile("a.safetensors", 10)})
    (ref,) = source.list()
    result = pull(source, ref, cache=tmp_path / "cache")
    assert result.status == "refused" and "hub declared 10 bytes" in (result.error or "")


def test_declared_small_but_actually_huge_is_stopped_mid_transfer(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    write_unet_weights(root / "w" / "model.safetensors", numel=100_000)  # ~400 KB
    (root / "w" / "model_index.json").write_text("{}")
    lie = CheckpointFile("model.safetensors", None)  # no size declared
    source = _LyingSource(root, {"model.safetensors": lie})
    (ref,) = source.list()
    result = pull(source, ref, cache=tmp_path / "cache", policy=PullPolicy(max_file_bytes=CAP))
    assert result.status == "refused"
    assert "passed the per-file cap of 4,096 bytes; stopped" in (result.error or "")


def test_per_checkpoint_cap_counts_actual_bytes(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    for i in range(3):
        write_unet_weights(root / "m" / f"part{i}.safetensors", numel=800)  # ~3.3 KB each
    (root / "m" / "model_index.json").write_text("{}")
    source = _LyingSource(
        root, {f"part{i}.safetensors": CheckpointFile(f"part{i}.safetensors") for i in range(3)}
    )
    (ref,) = source.list()
    policy = PullPolicy(max_file_bytes=CAP, max_checkpoint_bytes=2 * CAP)
    result = pull(source, ref, cache=tmp_path / "cache", policy=policy)
    assert result.status == "refused" and "per-checkpoint cap of 8,192" in (result.error or "")


def test_configs_have_their_own_cap_and_must_parse(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    write_unet_weights(root / "m" / "unet" / "diffusion_pytorch_model.safetensors")
    (root / "m" / "model_index.json").write_text("{not json")
    source = LocalSource(root)
    (ref,) = source.list()
    result = pull(source, ref, cache=tmp_path / "c1")
    assert result.status == "refused" and "model_index.json: not valid JSON" in (result.error or "")
    (root / "m" / "model_index.json").write_text(json.dumps({"pad": "x" * 300}))
    (ref,) = source.list()
    result = pull(source, ref, cache=tmp_path / "c2", policy=PullPolicy(max_config_bytes=100))
    assert result.status == "refused" and "over the per-file cap of 100" in (result.error or "")
    assert pull(source, ref, cache=tmp_path / "c3").ok


def test_benign_pickle_pulls_only_with_the_opt_in(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    (root / "p").mkdir(parents=True)
    torch.save({"lora_A.weight": torch.ones(2, 2)}, root / "p" / "pytorch_lora_weights.bin")
    (root / "p" / "dmsec_model.json").write_text('{"kind": "lora"}')
    source = LocalSource(root)
    (ref,) = source.list()
    assert pull(source, ref, cache=tmp_path / "c").status == "refused"
    result = pull(source, ref, cache=tmp_path / "c", policy=PullPolicy(allow_pickle=True))
    assert result.ok and {f.path for f in result.files} == {
        "pytorch_lora_weights.bin",
        "dmsec_model.json",
    }


def test_safetensors_preferred_over_pickle_twin(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    write_lora_folder(root / "l")
    write_malicious_pickle(root / "l" / "pytorch_lora_weights.bin", tmp_path / "canary")
    source = LocalSource(root)
    (ref,) = source.list()
    result = pull(source, ref, cache=tmp_path / "c", policy=PullPolicy(allow_pickle=True))
    assert result.ok and "pytorch_lora_weights.bin" not in {f.path for f in result.files}
    assert any("safetensors weights preferred" in s for s in result.skipped)
    assert not (tmp_path / "canary").exists()


def test_cache_is_content_addressed_and_reused(zoo: Path, tmp_path: Path) -> None:
    # lora-9 is a byte-for-byte copy of lora-3 under another name
    shutil.copytree(zoo / "lora-3", zoo / "lora-9")
    source = _LyingSource(zoo, {})
    cache = tmp_path / "cache"
    first = {r.ref.repo_id: r for r in Puller(cache).pull_all(source, source.list())}
    assert all(r.ok and not r.from_cache for r in first.values())
    a = first["lora-3"].file_path("pytorch_lora_weights.safetensors")
    b = first["lora-9"].file_path("pytorch_lora_weights.safetensors")
    assert os.path.samefile(a, b)  # one blob, two snapshots
    digest = next(f.sha256 for f in first["lora-3"].files if f.path.endswith(".safetensors"))
    assert (cache / "blobs" / "sha256" / digest[:2] / digest).is_file()
    assert a.stat().st_mode & 0o222 == 0  # blobs are read-only
    source.fetched.clear()
    again = {r.ref.repo_id: r for r in Puller(cache).pull_all(source, source.list())}
    assert all(r.ok and r.from_cache for r in again.values())
    assert source.fetched == []  # nothing re-read from the hub
    assert not list((cache / "tmp").iterdir())  # staging cleaned up


def test_pull_never_raises_for_a_failing_source(zoo: Path, tmp_path: Path) -> None:
    class Broken(LocalSource):
        def fetch(self, *args: object, **kwargs: object) -> None:
            raise ConnectionResetError("peer went away")

    source = Broken(zoo)
    ref = source.get("lora-3")
    result = pull(source, ref, cache=tmp_path / "cache")
    assert result.status == "failed" and "ConnectionResetError: peer went away" in (
        result.error or ""
    )

    class Other(LocalSource):
        name = "other"

    wrong = pull(Other(zoo), ref, cache=tmp_path / "cache")
    assert wrong.status == "failed" and "not 'other'" in (wrong.error or "")


def test_pull_step_for_pipelines(zoo: Path, tmp_path: Path) -> None:
    step = PullCheckpoint(str(zoo), cache_dir=tmp_path / "cache")
    row = {**LocalSource(zoo).get("lora-5").to_dict(), "scan_id": "s1"}
    out = step(row)
    assert out["pull_status"] == "ok" and out["pull_error"] == "" and out["scan_id"] == "s1"
    assert Path(out["local_path"], "pytorch_lora_weights.safetensors").is_file()


def test_result_and_policy_invariants(zoo: Path) -> None:
    ref = LocalSource(zoo).get("lora-3")
    with pytest.raises(ValueError, match="`status`"):
        PullResult(ref, "ok")
    with pytest.raises(ValueError, match="`status`"):
        PullResult(ref, "refused", path=zoo)
    for kw, field in [
        ({"max_file_bytes": 0}, "max_file_bytes"),
        ({"max_file_bytes": 10, "max_checkpoint_bytes": 5}, "max_checkpoint_bytes"),
        ({"include": ()}, "include"),
    ]:
        with pytest.raises(ConfigError, match=f"`{field}`"):
            PullPolicy(**kw)


def test_policy_pulls_one_copy_of_repeated_weights() -> None:
    names = [
        "model_index.json",
        "v1-5-pruned.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin",
        "vae/diffusion_pytorch_model.fp16.safetensors",
        "safety_checker/model.safetensors",
        "README.md",
    ]
    ref = CheckpointRef(
        "hf", "a/b", "1" * 40, "full", files=tuple(CheckpointFile(n, 10) for n in names)
    )
    selection = PullPolicy().select(ref)
    assert selection.refusal is None
    assert {f.path for f in selection.files} == {
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.fp16.safetensors",  # the only copy of the VAE: kept
        "README.md",  # the model card: hub metadata (base model, prompt)
    }
    reasons = dict(s.split(": ", 1) for s in selection.skipped)
    assert reasons["v1-5-pruned.safetensors"] == "single-file copy beside a diffusers folder"
    assert reasons["unet/diffusion_pytorch_model.fp16.safetensors"].startswith("variant of")
    assert reasons["safety_checker/model.safetensors"] == "excluded by pattern"
    everything = PullPolicy(exclude=(), one_copy_of_weights=False).select(ref)
    assert len(everything.files) == 8  # all but the pickle twin
