"""The Hugging Face source against a local server that answers like the Hub.

The real `huggingface_hub.HfApi.list_models` / `model_info` / `snapshot_download` run unchanged;
only the endpoint differs.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fake_hub import FakeHub, HfRepo
from hub_builders import (
    write_lora,
    write_lying_header,
    write_malicious_pickle,
    write_truncated_safetensors,
    write_unet_weights,
)

from dmsec.hub import ListFilter, Puller, PullPolicy, RetryPolicy
from dmsec.hub.huggingface import HuggingFaceSource, base_model_of, classify_repo

SD15 = "runwayml/stable-diffusion-v1-5"
ALL = ListFilter(kinds=frozenset({"full", "lora", "base"}))
CAP = 4096


def _stamp(day: int) -> str:
    return f"2025-01-{day:02d}T10:00:00.000Z"


@pytest.fixture
def hf(fake_hub: FakeHub, tmp_path: Path) -> FakeHub:
    """Seven repos over four pages: good ones, hostile ones, and one that is not a model."""
    b = tmp_path / "build"
    lora = write_lora(b / "l.safetensors", SD15).read_bytes()
    unet = write_unet_weights(b / "u.safetensors").read_bytes()
    evil = write_malicious_pickle(b / "e.bin", tmp_path / "canary").read_bytes()
    diffusers = {"model_index.json": b'{"_class_name": "StableDiffusionPipeline"}'}
    fake_hub.hf_repos = [
        HfRepo(
            "alice/pets-lora",
            {"pytorch_lora_weights.safetensors": lora, "README.md": b"# pets"},
            [
                "diffusers",
                "lora",
                "text-to-image",
                f"base_model:{SD15}",
                f"base_model:adapter:{SD15}",
            ],
            _stamp(9),
            card_data={"license": "openrail"},
        ),
        HfRepo(
            "alice/dreambooth-dog",
            {
                **diffusers,
                "unet/config.json": b"{}",
                "unet/diffusion_pytorch_model.safetensors": unet,
                "unet/diffusion_pytorch_model.bin": evil,
            },
            ["diffusers", "text-to-image", "dreambooth", "license:mit"],
            _stamp(8),
            card_data={"base_model": "CompVis/stable-diffusion-v1-4"},
        ),
        HfRepo(
            "bob/evil-lora",
            {"pytorch_lora_weights.bin": evil},
            [
                "diffusers",
                "text-to-image",
                "lora",
                f"base_model:{SD15}",
                f"base_model:adapter:{SD15}",
            ],
            _stamp(7),
        ),
        HfRepo(
            "bob/truncated-lora",
            {
                "pytorch_lora_weights.safetensors": write_truncated_safetensors(
                    b / "t.safetensors"
                ).read_bytes()
            },
            ["diffusers", "text-to-image", "lora"],
            _stamp(6),
        ),
        HfRepo(
            "carol/liar",
            {
                "pytorch_lora_weights.safetensors": write_lying_header(
                    b / "x.safetensors"
                ).read_bytes()
            },
            ["diffusers", "text-to-image", "lora"],
            _stamp(5),
        ),
        HfRepo(
            "carol/huge",
            {
                **diffusers,
                "unet/diffusion_pytorch_model.safetensors": write_unet_weights(
                    b / "h.safetensors", numel=4000
                ).read_bytes(),
            },
            ["diffusers", "text-to-image"],
            _stamp(4),
        ),
        HfRepo("dave/tokenizer", {"config.json": b"{}"}, ["diffusers", "text-to-image"], _stamp(3)),
    ]
    return fake_hub


def _source(hub: FakeHub, **kw: object) -> HuggingFaceSource:
    retry = RetryPolicy(base_delay_s=0.05, max_delay_s=0.2, jitter=0)
    return HuggingFaceSource(endpoint=hub.url, retry=retry, **kw)  # type: ignore[arg-type]


def test_classification_rules() -> None:
    assert classify_repo(["diffusers"], ["pytorch_lora_weights.safetensors"]) == "lora"
    assert classify_repo(["diffusers"], ["model_index.json"]) == "full"
    assert classify_repo([f"base_model:adapter:{SD15}"], ["x.safetensors"]) == "lora"
    assert classify_repo(["dreambooth"], []) == "full"
    assert classify_repo(["diffusers"], ["config.json"]) is None
    assert base_model_of([f"base_model:finetune:{SD15}"], None) == SD15
    assert base_model_of([f"base_model:{SD15}"], {"base_model": ["a/b", "c/d"]}) == "a/b"


def test_listing_follows_link_pagination_and_classifies(hf: FakeHub) -> None:
    refs = {r.repo_id: r for r in _source(hf).list(ALL)}
    pages = hf.requests_to("GET", "/api/models")
    pages = [p for p in pages if p.path == "/api/models"]
    assert len(pages) == 4 and [p.query.get("cursor") for p in pages[1:]] == [["2"], ["4"], ["6"]]
    assert pages[0].query["filter"] == ["text-to-image"] and pages[0].query["sort"] == [
        "lastModified"
    ]
    assert set(refs) == {
        "alice/pets-lora",
        "alice/dreambooth-dog",
        "bob/evil-lora",
        "bob/truncated-lora",
        "carol/liar",
        "carol/huge",
    }  # dave/tokenizer is not a diffusion checkpoint
    pets, dog = refs["alice/pets-lora"], refs["alice/dreambooth-dog"]
    assert (pets.kind, pets.base_model, pets.license) == ("lora", SD15, "openrail")
    assert (dog.kind, dog.base_model, dog.license) == (
        "full",
        "CompVis/stable-diffusion-v1-4",
        "mit",
    )
    assert pets.family == dog.family == "sd1"  # from the card's / tags' base_model
    assert pets.revision == hf.hf_repos[0].sha and pets.url == f"{hf.url}/alice/pets-lora"
    assert pets.last_modified == datetime(2025, 1, 9, 10, tzinfo=UTC)
    weights = next(f for f in pets.files if f.path.endswith(".safetensors"))
    assert weights.sha256 is not None and weights.size == len(hf.hf_repos[0].files[weights.path])
    readme = next(f for f in pets.files if f.path == "README.md")
    assert readme.git_sha1 is not None and readme.sha256 is None


def test_listing_is_lazy(hf: FakeHub) -> None:
    refs = _source(hf).list(ALL)
    assert next(refs).repo_id == "alice/pets-lora"
    assert len([r for r in hf.requests if r.path == "/api/models"]) == 1


def test_since_stops_paging_at_the_first_older_repo(hf: FakeHub) -> None:
    since = datetime(2025, 1, 8, tzinfo=UTC)
    refs = list(_source(hf).list(ListFilter(since=since)))
    assert [r.repo_id for r in refs] == ["alice/pets-lora", "alice/dreambooth-dog"]
    assert len([r for r in hf.requests if r.path == "/api/models"]) == 2  # of 4 pages


def test_kind_and_base_model_filters(hf: FakeHub) -> None:
    loras = [r.repo_id for r in _source(hf).list(ListFilter(kinds=frozenset({"full"})))]
    assert loras == ["alice/dreambooth-dog", "carol/huge"]
    hf.requests.clear()
    based = list(_source(hf).list(ListFilter(base_models=frozenset({SD15}))))
    assert [r.repo_id for r in based] == ["alice/pets-lora", "bob/evil-lora"]
    assert hf.requests[0].query["filter"] == ["text-to-image", f"base_model:{SD15}"]


def test_429_with_retry_after_on_a_listing_page_is_honoured(hf: FakeHub) -> None:
    hf.add_fault("GET", "/api/models", 429, {"Retry-After": "1"})
    refs = list(_source(hf).list(ListFilter(limit=1)))
    assert [r.repo_id for r in refs] == ["alice/pets-lora"]
    first, second = [r for r in hf.requests if r.path == "/api/models"][:2]
    assert second.time - first.time >= 1.0  # waited at least as long as asked


def test_model_info_5xx_and_429_are_retried(hf: FakeHub) -> None:
    path = f"/api/models/alice/pets-lora/revision/{hf.hf_repos[0].sha}"
    hf.add_fault("GET", path, 503, times=2)
    hf.add_fault("GET", path, 429, {"Retry-After": "1"})
    (ref,) = _source(hf).list(ListFilter(limit=1))
    calls = hf.requests_to("GET", path)
    assert ref.repo_id == "alice/pets-lora" and len(calls) == 4
    assert calls[3].time - calls[2].time >= 1.0  # the 429's Retry-After, not the 0.05s backoff


def test_persistent_5xx_on_one_repo_fails_the_listing_clearly(hf: FakeHub) -> None:
    hf.add_fault("GET", "/api/models/alice/pets-lora", 503, times=99)
    with pytest.raises(Exception, match="503 after 6 attempts"):
        list(_source(hf).list(ListFilter(limit=1)))


def test_pull_each_bad_repo_fails_alone(hf: FakeHub, tmp_path: Path) -> None:
    source = _source(hf)
    puller = Puller(
        tmp_path / "cache", PullPolicy(max_file_bytes=CAP, max_checkpoint_bytes=4 * CAP)
    )
    results = {r.ref.repo_id: r for r in puller.pull_all(source, source.list(ALL))}
    assert {k for k, r in results.items() if r.ok} == {"alice/pets-lora", "alice/dreambooth-dog"}
    errors = {k: r.error or "" for k, r in results.items() if not r.ok}
    assert "only pickle-format weights" in errors["bob/evil-lora"]
    assert "truncated" in errors["bob/truncated-lora"]
    assert "F32[4, 4] (64 bytes)" in errors["carol/liar"]
    assert "declared size" in errors["carol/huge"] and "per-file cap" in errors["carol/huge"]
    downloaded = {r.path for r in hf.requests if "/resolve/" in r.path}
    assert not any(p.endswith(".bin") for p in downloaded)  # pickles never fetched
    assert not any(p.startswith("/carol/huge/") for p in downloaded)  # refused before download
    assert not (tmp_path / "canary").exists()
    dog = results["alice/dreambooth-dog"]
    assert {f.path for f in dog.files} == {
        "model_index.json",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
    }
    weights = dog.file_path("unet/diffusion_pytorch_model.safetensors")
    assert weights.read_bytes() == hf.hf_repos[1].files["unet/diffusion_pytorch_model.safetensors"]


def test_tampered_download_fails_the_sha256_check(hf: FakeHub, tmp_path: Path) -> None:
    repo = hf.hf_repos[0]
    good = repo.files["pytorch_lora_weights.safetensors"]
    repo.served["pytorch_lora_weights.safetensors"] = good[:-1] + bytes([good[-1] ^ 1])
    source = _source(hf)
    (ref,) = source.list(ListFilter(limit=1))
    result = Puller(tmp_path / "cache").pull(source, ref)
    assert result.status == "refused" and "sha256 mismatch" in (result.error or "")


def test_download_5xx_is_retried(hf: FakeHub, tmp_path: Path) -> None:
    hf.add_fault("GET", "/cdn/", 503)
    source = _source(hf)
    (ref,) = source.list(ListFilter(limit=1))
    assert Puller(tmp_path / "cache").pull(source, ref).ok
    assert len(hf.requests_to("GET", "/cdn/")) == 2


def test_token_is_sent_to_the_hub_only_and_never_logged(
    hf: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "hf_SECRETsecret123"
    monkeypatch.setenv("HF_TOKEN", secret)
    caplog.set_level(logging.DEBUG)
    hf.add_fault("GET", "/api/models/alice", 503)  # make the retry path log too
    source = _source(hf)
    (ref,) = source.list(ListFilter(limit=1))
    result = Puller(tmp_path / "cache").pull(source, ref)
    assert result.ok
    api_calls = [r for r in hf.requests if r.path.startswith("/api/")]
    assert api_calls and all(
        r.headers.get("authorization") == f"Bearer {secret}" for r in api_calls
    )
    cdn_calls = hf.requests_to("GET", "/cdn/")
    assert cdn_calls and all("authorization" not in r.headers for r in cdn_calls)
    assert secret not in caplog.text and secret not in repr(source) and secret not in source.uri


def test_get_one_repo(hf: FakeHub) -> None:
    source = _source(hf)
    ref = source.get("alice/dreambooth-dog")
    assert ref.kind == "full" and ref.revision == hf.hf_repos[1].sha
    assert source.get("alice/dreambooth-dog", ref.revision) == ref
    with pytest.raises(Exception, match="no scannable checkpoint"):
        source.get("dave/tokenizer")


def test_security_status_of_the_hub_and_our_pickle_scan_are_recorded(hf: FakeHub, tmp_path: Path) -> None:  # fmt: skip
    from dmsec.hub.security import HUB_SECURITY_KEY, hub_verdicts

    evil = next(r for r in hf.hf_repos if r.repo_id == "bob/evil-lora")
    evil.security = {
        "scansDone": True,
        "filesWithIssues": [{"path": "pytorch_lora_weights.bin", "level": "danger",
                             "pickleImportScan": {"highestSafetyLevel": "dangerous", "imports": [
                                 {"module": "torch._utils", "name": "_rebuild_tensor_v2", "safety": "innocuous"},
                                 {"module": "posix", "name": "system", "safety": "dangerous"}]}}],
    }  # fmt: skip
    hf.hf_repos[0].security = {"scansDone": True, "filesWithIssues": []}
    source = _source(hf)
    ref = source.get("bob/evil-lora")
    (verdict,) = hub_verdicts(ref.extra, ref.source)
    assert (verdict.file, verdict.verdict, verdict.globals) == ("pytorch_lora_weights.bin", "unsafe", ("posix.system",))  # fmt: skip
    assert verdict.scanner == "hf-hub"
    clean = source.get("alice/pets-lora")
    assert [v.verdict for v in hub_verdicts(clean.extra, clean.source)] == ["safe"]
    assert HUB_SECURITY_KEY not in source.get("carol/liar").extra  # the Hub sent nothing
    requests = hf.requests_to("GET", "/api/models/bob/evil-lora")
    assert requests and all("securityStatus" in r.query for r in requests)

    # our own scan, with the opt-in: refused, and the verdict names the global; nothing ran
    puller = Puller(tmp_path / "cache", PullPolicy(max_file_bytes=CAP, allow_pickle=True))
    result = puller.pull(source, ref)
    assert result.status == "refused" and "posix.system" in (result.error or "")
    (ours,) = result.security
    assert (ours.scanner, ours.verdict, ours.globals) == ("picklescan", "unsafe", ("posix.system",))  # fmt: skip
    assert not (tmp_path / "canary").exists()


def test_retry_classify_treats_transport_errors_and_cache_misses_as_retryable() -> None:
    """Network failures below huggingface_hub's HTTP errors (httpx2 in 2.x, httpx in 1.x) and
    snapshot_download's "not in the local cache" after a failed HEAD are retried."""
    import importlib

    from huggingface_hub.errors import LocalEntryNotFoundError

    from dmsec.hub.huggingface import hf_retry_classify

    assert hf_retry_classify(LocalEntryNotFoundError("HEAD failed")) == (True, None)
    transports = []
    for name in ("httpx2", "httpx"):
        try:
            transports.append(importlib.import_module(name))
        except ImportError:
            continue
    assert transports, "huggingface_hub needs httpx or httpx2"
    for module in transports:
        assert hf_retry_classify(module.ConnectError("refused")) == (True, None), module.__name__
    assert hf_retry_classify(ValueError("a bug")) == (False, None)


def test_kohya_uploads_without_the_diffusers_tag_are_listed(fake_hub: FakeHub, tmp_path: Path) -> None:  # fmt: skip
    """kohya LoRAs are uploaded tagged lora / stable-diffusion / text-to-image, with no diffusers
    tag; the listing finds them and classifies them by file and tags as LoRAs."""
    lora = write_lora(tmp_path / "k.safetensors", SD15).read_bytes()
    kohya_tags = ["lora", "stable-diffusion", "text-to-image", f"base_model:adapter:{SD15}"]
    fake_hub.hf_repos = [
        HfRepo("erin/kohya-style", {"erin_style.safetensors": lora}, kohya_tags, _stamp(2)),
        HfRepo(
            "erin/llm", {"model.safetensors": lora}, ["transformers", "text-generation"], _stamp(1)
        ),  # fmt: skip
    ]
    (ref,) = _source(fake_hub).list()
    assert (ref.repo_id, ref.kind, ref.base_model) == ("erin/kohya-style", "lora", SD15)
    assert "diffusers" not in fake_hub.requests[0].query["filter"]
    assert _source(fake_hub, tags=("diffusers",)).uri == "hf://?tag=diffusers"
    assert HuggingFaceSource.from_uri("hf://erin?tag=lora", endpoint=fake_hub.url).tags == ("lora",)


def test_listing_makes_no_per_repo_call_and_details_makes_one(hf: FakeHub) -> None:
    source = _source(hf)
    listed = list(source.listing(ALL))
    assert len(listed) == 6 and all(f.size is None and f.sha256 is None for r in listed for f in r.files)  # fmt: skip
    assert {r.path for r in hf.requests} == {"/api/models"}  # pages only
    full = source.details(listed[0])
    assert full is not None and full.key == listed[0].key and full.files[0].size is not None
    assert len([r for r in hf.requests if r.path.startswith("/api/models/")]) == 1


def test_a_hostile_file_name_in_a_listing_is_dropped_not_the_listing(fake_hub: FakeHub, tmp_path: Path) -> None:  # fmt: skip
    lora = write_lora(tmp_path / "l.safetensors", SD15).read_bytes()
    tags = ["lora", "text-to-image"]
    fake_hub.hf_repos = [
        HfRepo(
            "eve/lora",
            {"pytorch_lora_weights.safetensors": lora, "../../etc/x.json": b"{}"},
            tags,
            _stamp(2),
        ),  # fmt: skip
        HfRepo("ok/lora", {"pytorch_lora_weights.safetensors": lora}, tags, _stamp(1)),
    ]
    listed = {r.repo_id: r for r in _source(fake_hub).listing()}
    assert set(listed) == {"eve/lora", "ok/lora"}
    assert [f.path for f in listed["eve/lora"].files] == ["pytorch_lora_weights.safetensors"]
