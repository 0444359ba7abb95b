"""Contract tests every hub source must pass (python-threatexchange style).

Each backend is built over equivalent good content (two LoRAs and a full model) and held to the
same promises: lazy listing, refs named by the source, unique keys, `get` agrees with `list`,
`source_from_uri(source.uri)` rebuilds it, every listed ref pulls and verifies, and a second
listing through the ledger is empty.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fake_hub import CivitaiFile, CivitaiModel, CivitaiVersion, FakeHub, HfRepo
from hub_builders import make_zoo, upload_tree, write_lora, write_unet_weights

from dmsec.hub import (
    HubSource,
    Ledger,
    ListFilter,
    Puller,
    RetryPolicy,
    get_source_class,
    source_from_uri,
)


@dataclass
class Case:
    source: HubSource
    options: dict[str, Any]


def _local(tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    zoo = make_zoo(tmp_path / "zoo")
    return Case(source_from_uri(str(zoo)), {})


def _s3(tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    client, bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("moto_endpoint")
    upload_tree(client, bucket, make_zoo(tmp_path / "zoo"), "zoo")
    options = {"endpoint_url": endpoint}
    return Case(source_from_uri(f"s3://{bucket}/zoo", **options), options)


def _hf(tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    hub: FakeHub = request.getfixturevalue("fake_hub")
    b = tmp_path / "b"
    hub.hf_repos = [
        HfRepo(
            f"org/lora-{i}",
            {
                "pytorch_lora_weights.safetensors": write_lora(
                    b / f"{i}.safetensors", "sd", i
                ).read_bytes()
            },
            ["diffusers", "text-to-image", "lora", "base_model:sd"],
            f"2025-01-0{i + 1}T00:00:00.000Z",
        )
        for i in range(2)
    ]
    hub.hf_repos.append(
        HfRepo(
            "org/full",
            {
                "model_index.json": b"{}",
                "unet/config.json": b"{}",
                "unet/diffusion_pytorch_model.safetensors": write_unet_weights(
                    b / "u.safetensors"
                ).read_bytes(),
            },
            ["diffusers", "text-to-image", "dreambooth"],
            "2025-01-05T00:00:00.000Z",
        )
    )
    options = {"endpoint": hub.url, "retry": RetryPolicy(base_delay_s=0.05)}
    return Case(source_from_uri("hf://org", **options), options)


def _civitai(tmp_path: Path, request: pytest.FixtureRequest) -> Case:
    hub: FakeHub = request.getfixturevalue("fake_hub")
    b = tmp_path / "b"
    hub.civitai_models = [
        CivitaiModel(
            i,
            f"m{i}",
            "LORA" if i < 2 else "Checkpoint",
            [],
            [
                CivitaiVersion(
                    10 * i + 1,
                    "SD 1.5",
                    "2025-01-01T00:00:00Z",
                    [
                        CivitaiFile(
                            f"m{i}.safetensors",
                            write_lora(b / f"{i}.safetensors", "sd", i).read_bytes(),
                        )
                    ],
                )
            ],
        )
        for i in range(3)
    ]
    options = {"endpoint": hub.url, "retry": RetryPolicy(base_delay_s=0.05), "page_size": 2}
    return Case(source_from_uri("civitai://", **options), options)


BUILDERS: dict[str, Callable[[Path, pytest.FixtureRequest], Case]] = {
    "local": _local,
    "s3": _s3,
    "hf": _hf,
    "civitai": _civitai,
}


@pytest.fixture(params=sorted(BUILDERS))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    return BUILDERS[request.param](tmp_path, request)


def test_listing_is_lazy_named_and_unique(case: Case) -> None:
    source = case.source
    listing = source.list()
    assert isinstance(listing, types.GeneratorType)
    refs = list(listing)
    assert len(refs) == 3
    assert all(r.source == source.name for r in refs)
    assert len({r.key for r in refs}) == len(refs)
    assert all(r.kind in ("full", "lora") and r.files for r in refs)
    assert get_source_class(source.name) is type(source)
    assert len(list(source.list(ListFilter(limit=1)))) == 1


def test_get_agrees_with_list(case: Case) -> None:
    for ref in case.source.list():
        assert case.source.get(ref.repo_id, ref.revision) == ref


def test_uri_rebuilds_an_equivalent_source(case: Case) -> None:
    again = source_from_uri(case.source.uri, **case.options)
    assert {r.key for r in again.list()} == {r.key for r in case.source.list()}


def test_every_ref_pulls_verifies_and_is_cached(case: Case, tmp_path: Path) -> None:
    puller = Puller(tmp_path / "cache")
    for ref in case.source.list():
        result = puller.pull(case.source, ref)
        assert result.ok, result.error
        assert any(f.path.endswith(".safetensors") for f in result.files)
        declared = {f.path: f.sha256 for f in ref.files if f.sha256}
        assert all(declared.get(f.path, f.sha256) == f.sha256 for f in result.files)
        assert all(result.file_path(f.path).stat().st_size == f.size for f in result.files)
        assert puller.pull(case.source, ref).from_cache


def test_second_listing_through_the_ledger_is_empty(case: Case, tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.parquet")
    first = list(ledger.pending(case.source.list(), "cfg"))
    ledger.mark_many([(r, "ok") for r in first], "cfg")
    assert len(first) == 3 and list(ledger.pending(case.source.list(), "cfg")) == []


def test_listing_names_what_details_completes(case: Case) -> None:
    """`listing` (no per-repo call) already has each ref's identity and revision, so a ledger can
    be checked before `details`; `details` turns it into exactly what `list` yields."""
    listed = list(case.source.listing())
    full = list(case.source.list())
    assert [r.key for r in listed] == [r.key for r in full] and len(full) == 3
    assert [case.source.details(r) for r in listed] == full
