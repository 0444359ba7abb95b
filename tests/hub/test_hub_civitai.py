"""The Civitai source against a local server that answers like Civitai's REST API."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fake_hub import CivitaiFile, CivitaiModel, CivitaiVersion, FakeHub
from hub_builders import write_lora, write_malicious_pickle, write_unet_weights

from dmsec.errors import ConfigError
from dmsec.hub import HubError, ListFilter, Puller, RetryPolicy
from dmsec.hub.civitai import CivitaiSource

SECRET = "civitai-SECRET-key-42"


@pytest.fixture
def civitai(fake_hub: FakeHub, tmp_path: Path) -> FakeHub:
    """Five models over three pages: LoRAs and checkpoints on two base models, one hostile."""
    b = tmp_path / "build"
    lora = lambda seed: write_lora(b / f"l{seed}.safetensors", "sd15", seed).read_bytes()  # noqa: E731
    ckpt = write_unet_weights(b / "c.safetensors").read_bytes()
    evil = write_malicious_pickle(b / "e.ckpt", tmp_path / "canary").read_bytes()
    fake_hub.civitai_models = [
        CivitaiModel(
            1,
            "Cats",
            "LORA",
            ["cat"],
            [
                CivitaiVersion(
                    11,
                    "SD 1.5",
                    "2025-02-02T00:00:00.000Z",
                    [CivitaiFile("cats_v2.safetensors", lora(1))],
                ),
                CivitaiVersion(
                    10,
                    "SD 1.5",
                    "2025-01-01T00:00:00.000Z",
                    [CivitaiFile("cats_v1.safetensors", lora(2))],
                ),
            ],
        ),
        CivitaiModel(
            2,
            "Realism",
            "Checkpoint",
            ["photo"],
            [
                CivitaiVersion(
                    20,
                    "SDXL 1.0",
                    "2025-01-15T00:00:00.000Z",
                    [CivitaiFile("real.safetensors", ckpt)],
                )
            ],
        ),
        CivitaiModel(
            3,
            "Evil",
            "LORA",
            [],
            [
                CivitaiVersion(
                    30,
                    "SD 1.5",
                    "2025-01-10T00:00:00.000Z",
                    [CivitaiFile("evil.ckpt", evil, "PickleTensor")],
                )
            ],
        ),
        CivitaiModel(
            4,
            "Poses",
            "Poses",
            [],
            [
                CivitaiVersion(
                    40, "SD 1.5", "2025-01-10T00:00:00.000Z", [CivitaiFile("p.zip", b"zip")]
                )
            ],
        ),
        CivitaiModel(
            5,
            "Wrong hash",
            "LORA",
            [],
            [
                CivitaiVersion(
                    50,
                    "SD 1.5",
                    "2025-01-09T00:00:00.000Z",
                    [CivitaiFile("w.safetensors", lora(3), declared_sha256="ab" * 32)],
                )
            ],
        ),
    ]
    return fake_hub


def _source(hub: FakeHub, **kw: object) -> CivitaiSource:
    retry = RetryPolicy(base_delay_s=0.2, max_delay_s=1, jitter=0)
    return CivitaiSource(endpoint=hub.url, retry=retry, page_size=2, **kw)  # type: ignore[arg-type]


def test_listing_pages_by_cursor_and_maps_versions_to_refs(civitai: FakeHub) -> None:
    refs = {(r.repo_id, r.revision): r for r in _source(civitai).list()}
    assert set(refs) == {("1", "11"), ("1", "10"), ("2", "20"), ("3", "30"), ("5", "50")}
    pages = civitai.requests_to("GET", "/api/v1/models")
    assert len(pages) == 2 and pages[0].query["types"] == ["Checkpoint", "DoRA", "LORA", "LoCon"]
    assert pages[1].query["cursor"] == ["2"]
    cats = refs[("1", "11")]
    assert (cats.kind, cats.base_model, cats.tags) == ("lora", "SD 1.5", ("cat",))
    assert refs[("2", "20")].kind == "full" and refs[("2", "20")].base_model == "SDXL 1.0"
    assert (cats.family, refs[("2", "20")].family) == ("sd1", "sdxl")  # from `baseModel`
    (f,) = cats.files
    data = civitai.civitai_models[0].versions[0].files[0].data
    assert f.path == "cats_v2.safetensors" and f.sha256 == hashlib.sha256(data).hexdigest()
    assert f.size == len(data) and not f.size_exact and f.url and "/api/download/models/11" in f.url
    assert cats.url == f"{civitai.url}/models/1?modelVersionId=11"


def test_filters_are_sent_to_the_api_and_applied(civitai: FakeHub) -> None:
    flt = ListFilter(kinds=frozenset({"lora"}), base_models=frozenset({"SD 1.5"}))
    refs = list(_source(civitai).list(flt))
    assert {(r.repo_id, r.revision) for r in refs} == {
        ("1", "11"),
        ("1", "10"),
        ("3", "30"),
        ("5", "50"),
    }
    first = civitai.requests_to("GET", "/api/v1/models")[0]
    assert first.query["types"] == ["DoRA", "LORA", "LoCon"] and first.query["baseModels"] == [
        "SD 1.5"
    ]
    assert list(_source(civitai).list(ListFilter(kinds=frozenset({"base"})))) == []
    civitai.requests.clear()
    list(_source(civitai, nsfw=True).list(ListFilter(limit=1)))
    assert civitai.requests[0].query["nsfw"] == ["true"]


def test_429_without_retry_after_backs_off_and_5xx_is_retried(civitai: FakeHub) -> None:
    civitai.add_fault("GET", "/api/v1/models", 429)  # Civitai's bare rate limit
    civitai.add_fault("GET", "/api/v1/models", 502)
    refs = list(_source(civitai).list(ListFilter(limit=1)))
    assert len(refs) == 1
    calls = civitai.requests_to("GET", "/api/v1/models")
    assert len(calls) == 3
    assert calls[1].time - calls[0].time >= 0.2  # first backoff step
    assert calls[2].time - calls[1].time >= 0.4  # doubled


def test_retry_after_is_honoured_when_given(civitai: FakeHub) -> None:
    civitai.add_fault("GET", "/api/v1/models", 429, {"Retry-After": "1"})
    list(_source(civitai).list(ListFilter(limit=1)))
    first, second = civitai.requests_to("GET", "/api/v1/models")[:2]
    assert second.time - first.time >= 1.0


def test_giving_up_is_a_hub_error(civitai: FakeHub) -> None:
    civitai.add_fault("GET", "/api/v1/models", 503, times=99)
    with pytest.raises(HubError, match="HTTP 503 after 6 attempts"):
        list(_source(civitai).list())


def test_next_page_off_the_endpoint_is_not_followed(civitai: FakeHub) -> None:
    """A hostile API answer must not send our key to another host: fall back to the cursor.

    The source talks to the server as "localhost"; the server's nextPage links name
    "127.0.0.1", which is another origin. Every request must still go to "localhost".
    """
    source = _source(civitai, api_key=SECRET)
    source.endpoint = civitai.url.replace("127.0.0.1", "localhost")
    refs = list(source.list())
    assert len(refs) == 5  # all pages, through nextCursor
    assert len(civitai.requests) == 2
    assert all(r.headers["host"].startswith("localhost:") for r in civitai.requests)
    assert civitai.requests[1].query["cursor"] == ["2"]


def test_pull_verifies_sha256_and_refuses_pickles(civitai: FakeHub, tmp_path: Path) -> None:
    source = _source(civitai)
    results = {
        (r.ref.repo_id, r.ref.revision): r
        for r in Puller(tmp_path / "cache").pull_all(source, source.list())
    }
    assert {k for k, r in results.items() if r.ok} == {("1", "11"), ("1", "10"), ("2", "20")}
    assert "only pickle-format weights (evil.ckpt)" in (results[("3", "30")].error or "")
    assert "sha256 mismatch" in (results[("5", "50")].error or "")
    assert not civitai.requests_to("GET", "/api/download/models/30")  # pickle never fetched
    assert not (tmp_path / "canary").exists()
    cats = results[("1", "11")].file_path("cats_v2.safetensors")
    assert cats.read_bytes() == civitai.civitai_models[0].versions[0].files[0].data


def test_api_key_goes_only_to_civitai_in_a_header_and_is_never_logged(
    civitai: FakeHub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    civitai.civitai_api_key = SECRET  # downloads now need it
    caplog.set_level(logging.DEBUG)
    civitai.add_fault("GET", "/api/download/", 503)
    anonymous = _source(civitai)
    ref = anonymous.get("1", "11")
    failed = Puller(tmp_path / "c1").pull(anonymous, ref)
    assert failed.status == "failed" and "HTTP 401" in (failed.error or "")
    monkeypatch.setenv("CIVITAI_API_KEY", SECRET)
    source = _source(civitai)
    assert Puller(tmp_path / "c2").pull(source, ref).ok
    api = [
        r for r in civitai.requests if r.path.startswith("/api/") and r.headers.get("authorization")
    ]
    assert api and all(r.headers["authorization"] == f"Bearer {SECRET}" for r in api)
    assert all(SECRET not in str(r.query) for r in civitai.requests)  # never in a URL
    cdn = civitai.requests_to("GET", "/cdn/")
    assert cdn and all("authorization" not in r.headers for r in cdn)  # dropped on redirect
    assert SECRET not in caplog.text and SECRET not in source.uri


def test_get_and_uri(civitai: FakeHub) -> None:
    source = _source(civitai)
    assert source.get("1").revision == "11"  # newest version
    assert source.get("1", "10").files[0].path == "cats_v1.safetensors"
    with pytest.raises(HubError, match="no checkpoint version"):
        source.get("1", "999")
    with pytest.raises(HubError, match="not found"):
        source.get("77")
    assert CivitaiSource.from_uri("civitai://?query=cats&sort=Most+Downloaded").uri == (
        "civitai://?query=cats&sort=Most+Downloaded"
    )


def test_nsfw_is_taken_from_the_uri_and_sent(civitai: FakeHub) -> None:
    source = CivitaiSource.from_uri("civitai://?nsfw=true", endpoint=civitai.url)
    assert source.nsfw is True and source.uri == "civitai://?nsfw=true"
    next(iter(source.list()))
    assert civitai.requests_to("GET", "/api/v1/models")[0].query["nsfw"] == ["true"]
    assert CivitaiSource.from_uri("civitai://?nsfw=false").uri == "civitai://?nsfw=false"
    with pytest.raises(ConfigError, match="`nsfw` must be true or false"):
        CivitaiSource.from_uri("civitai://?nsfw=maybe")


def test_since_stops_paging_after_the_first_page_with_nothing_that_recent(civitai: FakeHub) -> None:  # fmt: skip
    since = datetime(2025, 1, 12, tzinfo=UTC)
    source = CivitaiSource(endpoint=civitai.url, page_size=1)
    refs = list(source.list(ListFilter(since=since)))
    assert {(r.repo_id, r.revision) for r in refs} == {("1", "11"), ("2", "20")}
    assert len(civitai.requests_to("GET", "/api/v1/models")) == 3  # of 4 pages: model 5 unasked


def test_a_failed_page_ends_the_listing_after_the_refs_before_it(civitai: FakeHub) -> None:
    fast = RetryPolicy(base_delay_s=0.01, max_delay_s=0.02, jitter=0)
    listing = CivitaiSource(endpoint=civitai.url, retry=fast, page_size=2).listing()
    first_page = [next(listing) for _ in range(3)]  # models 1 (two versions) and 2
    civitai.add_fault("GET", "/api/v1/models", 503, times=99)
    with pytest.raises(HubError, match="503"):
        next(listing)
    assert [(r.repo_id, r.revision) for r in first_page] == [("1", "11"), ("1", "10"), ("2", "20")]
