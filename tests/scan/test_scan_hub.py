"""Scans of a hub as the Hub answers: one target, a dry run, listings that scale.

The fake Hugging Face Hub of `tests/hub/fake_hub.py` serves the small zoo's base and LoRA as
repos (files, card `base_model`, tags as the Hub sends them), and the real `huggingface_hub`
client talks to it; its request log shows what the scan asked the hub.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parents[1] / "hub"))  # the fake hub

from fake_hub import FakeHub, HfRepo  # noqa: E402
from hub_builders import write_lora, write_malicious_pickle  # noqa: E402

from dmsec.cli import main  # noqa: E402
from dmsec.hub import CheckpointRef, Ledger  # noqa: E402
from dmsec.scan.config import config_from_dict  # noqa: E402
from dmsec.scan.plan import ScanPlan, plan_scan, plan_windows  # noqa: E402
from dmsec.scan.resolve import ResolvedScan  # noqa: E402

LORA = "lora-9a-light"
#: FineXtract cut down to seconds on CPU: this file tests the hub end, not the extraction
QUICK = ["--local", "--set", "extract.n_samples=8", "--set", "extract.steps=4",
         "--set", "methods.verifier=null", "--set", "results.report=false"]  # fmt: skip


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A started fake hub that `hf://` reaches (HF_ENDPOINT), with no real token or cache."""
    fake = FakeHub(page_size=2).start()
    for name in ("HF_TOKEN", "DMSEC_HUB_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    yield fake
    fake.stop()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def _publish_zoo(hub: FakeHub, zoo_root: Path, readme: str = "# a LoRA\n") -> HfRepo:
    """The zoo's base and one LoRA as HF repos; returns the LoRA's."""
    lora = HfRepo(f"zoo/{LORA}", {**_files(zoo_root / LORA), "README.md": readme.encode()},
                  ["lora", "text-to-image", "base_model:adapter:zoo/base"],
                  "2025-03-02T00:00:00.000Z", card_data={"base_model": "zoo/base"})  # fmt: skip
    base = HfRepo("zoo/base", _files(zoo_root / "base"), ["diffusers", "text-to-image"],
                  "2025-03-01T00:00:00.000Z")  # fmt: skip
    hub.hf_repos = [lora, base]
    return lora


def _scan(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["scan", *args])
    return result.exit_code, result.output


def _summary(path: Path) -> dict:
    return json.loads(path.read_text())


def _downloads(hub: FakeHub) -> list[str]:
    download = ("/cdn/", "/api/download/")  # the CDN, Civitai's download redirects
    return [r.path for r in hub.requests if "/resolve/" in r.path or r.path.startswith(download)]


def test_one_hf_target_is_scanned_alone_and_a_readme_commit_is_not_rescanned(
    hub: FakeHub, small_zoo, zoo_registry: Path, tmp_path: Path
) -> None:
    lora = _publish_zoo(hub, small_zoo.root)
    first_sha = lora.sha
    out, cache, summary = tmp_path / "out", tmp_path / "cache", tmp_path / "s.json"
    common = ["--registry", str(zoo_registry), "--out", str(out), "--summary-json", str(summary),
              "--set", f"run.cache_dir={json.dumps(str(cache))}", *QUICK]  # fmt: skip
    code, output = _scan(f"hf://zoo/{LORA}@{first_sha}", *common)
    assert code == 0, output
    done = _summary(summary)
    assert done["listed"] == 1 and done["checkpoints"] == {"ok": 1}, output
    assert done["rows"]["candidates"] > 0 and done["stage_seconds"]["extract"] > 0  # it ran
    assert f"one target: zoo/{LORA}@{first_sha}" in output
    assert not any(r.path == "/api/models" for r in hub.requests)  # no listing for one target

    lora.files["README.md"] = b"# a LoRA\n\nNow with a better description.\n"  # a new commit
    assert lora.sha != first_sha
    hub.requests.clear()
    code, output = _scan(f"hf://zoo/{LORA}", *common)
    assert code == 0, output
    again = _summary(summary)
    assert again["checkpoints"] == {"skipped": 1} and again["errors"] == [], output
    assert f"weights and configs hash as at revision {first_sha}" in output
    assert _downloads(hub) == []  # not scanned again, not even pulled

    code, output = _scan(f"hf://zoo/{LORA}", *common)  # the new revision is in the ledger now
    assert code == 0 and _summary(summary)["already_scanned"] == 1, output
    assert _summary(summary)["checkpoints"] == {} and _downloads(hub) == []


def test_dry_run_of_a_target_pulls_and_writes_nothing(hub: FakeHub, small_zoo, zoo_registry: Path, tmp_path: Path) -> None:  # fmt: skip
    lora = _publish_zoo(hub, small_zoo.root)
    out = tmp_path / "out"
    code, output = _scan(f"hf://zoo/{LORA}@{lora.sha}", "--dry-run", "--registry", str(zoo_registry), "--out", str(out))  # fmt: skip
    assert code == 0, output
    assert f"scan     zoo/{LORA}@{lora.sha[:12]}  lora, base zoo/base" in output
    assert "pytorch_lora_weights.safetensors, README.md" in output  # the card is pulled as text
    assert "1 listed, 1 would be pulled and scanned" in output
    assert _downloads(hub) == [] and not out.exists()


def test_malformed_target_is_a_clear_error(hub: FakeHub) -> None:
    code, output = _scan("hf://zoo", "--dry-run")
    assert code == 1 and "an HF target is exactly one repo, org/repo" in output
    code, output = _scan("hf://zoo/x", "--source", "hf://", "--dry-run")
    assert code == 2 and "not both" in output


def _resolved(uri: str, config_hash: str = "cfg") -> ResolvedScan:
    config = config_from_dict({"source": {"uri": uri}})
    return ResolvedScan(config, uri, None, "unused", "zoo", 0.5, config_hash)


def _loras(hub: FakeHub, tmp_path: Path, n: int, pickle_only: bool = False) -> None:
    tags = ["lora", "stable-diffusion", "text-to-image"]  # as kohya uploads are tagged
    for i in range(n):
        if pickle_only:
            files = {"model.ckpt": write_malicious_pickle(tmp_path / f"{i}.ckpt", tmp_path / "canary").read_bytes()}  # fmt: skip
        else:
            files = {f"style{i}.safetensors": write_lora(tmp_path / f"{i}.safetensors", "sd", i).read_bytes()}  # fmt: skip
        hub.hf_repos.append(HfRepo(f"kohya/style-{i}", files, tags, f"2025-01-{10 + i:02d}T00:00:00.000Z",
                                   card_data={"base_model": "runwayml/stable-diffusion-v1-5"}))  # fmt: skip


def test_listing_asks_nothing_per_repo_about_what_the_ledger_holds(hub: FakeHub, tmp_path: Path) -> None:  # fmt: skip
    _loras(hub, tmp_path, 5)
    ledger, resolved = Ledger(tmp_path / "ledger.parquet"), _resolved("hf://")
    first = plan_scan(resolved, ledger, "scan-1")
    assert len(first.items) == 5 and not first.already and not first.partial
    assert len([r for r in hub.requests if r.path.startswith("/api/models/")]) == 5
    done = [CheckpointRef.from_dict(it.ref) for it in first.items[:3]]
    ledger.mark_many([(ref, "ok") for ref in done], "cfg")

    hub.requests.clear()
    second = plan_scan(resolved, ledger, "scan-2")
    assert set(second.already) == {r.key for r in done}
    new = {it.name for it in second.items}
    assert new == {f"kohya/style-{i}" for i in range(5)} - {r.repo_id for r in done}
    per_repo = {r.path.split("/revision/")[0] for r in hub.requests if r.path.startswith("/api/models/")}  # fmt: skip
    assert per_repo == {f"/api/models/{name}" for name in new}  # none for the 3 in the ledger
    assert (
        len([r for r in hub.requests if r.path == "/api/models"]) == 3
    )  # the pages: 5 repos, 2 a page


def test_a_failed_listing_page_is_a_partial_listing_not_a_failed_scan(
    hub: FakeHub, zoo_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub.utils import _http, _pagination

    # huggingface_hub's own backoff for listing pages, at 1/100 of its waits
    fast = lambda *a, **kw: _http.http_backoff(*a, base_wait_time=0.01, max_wait_time=0.02, **kw)  # noqa: E731
    monkeypatch.setattr(_pagination, "http_backoff", fast)
    _loras(hub, tmp_path, 3, pickle_only=True)  # refused by the pull policy: no model needed
    out, summary = tmp_path / "out", tmp_path / "s.json"
    args = ["--source", "hf://", "--registry", str(zoo_registry), "--out", str(out),
            "--summary-json", str(summary), "--fail-on", "errors", *QUICK]  # fmt: skip
    # page 1 and the model_info of its two repos are answered; page 2 fails on every try
    hub.add_fault("GET", "/api/models", 503, times=99, skip=3)
    code, output = _scan(*args)
    assert code == 0, output
    first = _summary(summary)
    assert first["listing"]["partial"] is True and "503" in first["listing"]["error"]
    assert first["listed"] == 2 and first["checkpoints"] == {"skipped": 2}, output
    assert "listing PARTIAL" in output

    hub.faults.clear()
    code, output = _scan(*args)  # the next scan lists again and gets the rest
    again = _summary(summary)
    assert code == 0 and again["listing"]["partial"] is False, output
    assert (again["listed"], again["already_scanned"], again["checkpoints"]) == (
        3,
        2,
        {"skipped": 1},
    )


def test_a_local_checkpoint_folder_is_a_target(small_zoo, zoo_registry: Path, tmp_path: Path) -> None:  # fmt: skip
    """The folder's parent is the source, so the zoo LoRA's `../base` is found beside it."""
    out = tmp_path / "out"
    code, output = _scan(str(small_zoo.root / LORA), "--dry-run", "--registry", str(zoo_registry), "--out", str(out))  # fmt: skip
    assert code == 0, output
    assert f"one target: {LORA}@newest" in output and f"scan     {LORA}@" in output
    assert "lora, base base " in output and "1 listed, 1 would be pulled and scanned" in output
    assert not out.exists()


def test_a_missing_target_exits_1_naming_it(hub: FakeHub, small_zoo, zoo_registry: Path, tmp_path: Path) -> None:  # fmt: skip
    _publish_zoo(hub, small_zoo.root)
    code, output = _scan("hf://zoo/no-such-lora", "--dry-run", "--registry", str(zoo_registry), "--out", str(tmp_path / "o"))  # fmt: skip
    assert code == 1 and "no scannable checkpoint 'zoo/no-such-lora'" in output


def test_a_civitai_version_is_a_target(
    hub: FakeHub, zoo_registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fake_hub import CivitaiFile, CivitaiModel, CivitaiVersion

    monkeypatch.setenv("DMSEC_CIVITAI_ENDPOINT", hub.url)
    weights = [write_lora(tmp_path / f"{v}.safetensors", "sd", v).read_bytes() for v in (1, 2)]
    versions = [CivitaiVersion(v, "SD 1.5", f"2025-0{v}-01T00:00:00.000Z", [CivitaiFile(f"cat_v{v}.safetensors", w)])
                for v, w in zip((2, 1), weights, strict=True)]  # fmt: skip
    hub.civitai_models = [CivitaiModel(7, "Cat", "LORA", ["cat"], versions)]
    args = ["--dry-run", "--registry", str(zoo_registry), "--out", str(tmp_path / "o"),
            "--set", 'source.bases=["SD 1.5=zoo/base"]']  # fmt: skip
    code, output = _scan("civitai://models/7@1", *args)
    assert code == 0, output
    assert "scan     7@1  lora, base zoo/base (family sd1); " in output
    assert (
        "prompt: from the weights' card or metadata once pulled, else none; pull 1 files" in output
    )
    assert "cat_v1.safetensors" in output and "cat_v2" not in output
    code, output = _scan("civitai://models/7", *args)  # no version: the newest
    assert code == 0 and "scan     7@2  " in output, output
    assert _downloads(hub) == []


def test_a_repo_the_hub_stops_serving_after_listing_is_an_error_row_retried(hub: FakeHub, tmp_path: Path) -> None:  # fmt: skip
    _loras(hub, tmp_path, 2)
    hub.add_fault("GET", "/api/models/kohya/style-0", 404, {"X-Error-Code": "RepoNotFound"})
    plan = plan_scan(_resolved("hf://"), Ledger(tmp_path / "ledger.parquet"), "scan-1")
    (gone,) = plan.settled
    assert (gone.name, gone.status, gone.retryable) == ("kohya/style-0", "error", True)
    assert "no longer serves it" in (gone.error or "")
    assert [it.name for it in plan.items] == ["kohya/style-1"]


def test_windows_are_handed_on_while_the_listing_is_still_being_paged(hub: FakeHub, tmp_path: Path) -> None:  # fmt: skip
    """The executor gets the first window before the last listing page has been asked for."""
    _loras(hub, tmp_path, 5)
    plan = ScanPlan()
    windows = plan_windows(_resolved("hf://"), Ledger(tmp_path / "ledger.parquet"), "scan-1", plan, window=2)  # fmt: skip
    first = next(windows)
    assert len(first.items) == 2 and [it.order for it in first.items] == [0, 1]
    assert len([r for r in hub.requests if r.path == "/api/models"]) == 1  # of 3 pages
    rest = list(windows)
    assert [len(w.items) for w in rest] == [2, 1] and [it.order for it in rest[1].items] == [4]
    assert len(plan.listed) == 5 and len([r for r in hub.requests if r.path == "/api/models"]) == 3
