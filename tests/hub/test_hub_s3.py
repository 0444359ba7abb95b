"""The S3 source against moto's S3 server, spoken to by boto3 over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_builders import (
    upload_tree,
    write_lora,
    write_lying_header,
    write_malicious_pickle,
    write_truncated_safetensors,
)

from dmsec.hub import ListFilter, Puller, PullPolicy, RefNotFoundError, source_from_uri
from dmsec.hub.local import LocalSource
from dmsec.hub.s3 import S3Source

ALL = ListFilter(kinds=frozenset({"full", "lora", "base"}))


def _source(moto_endpoint: str, bucket: str, prefix: str = "zoo") -> S3Source:
    return S3Source.from_uri(f"s3://{bucket}/{prefix}", endpoint_url=moto_endpoint)


def test_lists_the_zoo_like_the_local_source(
    zoo: Path, s3_bucket: tuple, moto_endpoint: str
) -> None:
    client, bucket = s3_bucket
    upload_tree(client, bucket, zoo, "zoo")
    client.put_object(Bucket=bucket, Key="elsewhere/lora.safetensors", Body=b"x" * 16)
    refs = {r.repo_id: r for r in _source(moto_endpoint, bucket).list(ALL)}
    prefix = f"{bucket}/zoo"
    assert set(refs) == {
        f"{prefix}/base",
        f"{prefix}/full-7",
        f"{prefix}/lora-3",
        f"{prefix}/lora-5",
    }
    local = {f"{prefix}/{r.repo_id}": r for r in LocalSource(zoo).list(ALL)}
    for repo_id, ref in refs.items():
        assert ref.kind == local[repo_id].kind
        assert {(f.path, f.size) for f in ref.files} == {
            (f.path, f.size) for f in local[repo_id].files
        }
    # relative base models resolve to the base checkpoint in the same bucket
    assert refs[f"{prefix}/lora-3"].base_model == f"{prefix}/base"
    assert refs[f"{prefix}/lora-5"].base_model == f"{prefix}/base"
    assert refs[f"{prefix}/lora-3"].url == f"s3://{prefix}/lora-3"


def test_source_uri_alone_follows_the_one_endpoint_rule(
    zoo: Path, s3_bucket: tuple, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`DMSEC_S3_ENDPOINT_URL` points hub sources where it points the registry and results."""
    client, bucket = s3_bucket
    upload_tree(client, bucket, zoo, "zoo")
    monkeypatch.setenv("DMSEC_S3_ENDPOINT_URL", moto_endpoint)
    source = source_from_uri(f"s3://{bucket}/zoo")
    assert source.endpoint_url == moto_endpoint
    assert f"{bucket}/zoo/base" in {r.repo_id for r in source.list(ALL)}


def test_listing_pages_through_the_paginator(
    zoo: Path, s3_bucket: tuple, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, bucket = s3_bucket
    upload_tree(client, bucket, zoo, "zoo")
    source = S3Source(bucket, "zoo", endpoint_url=moto_endpoint, page_size=2)
    calls: list[dict] = []
    real = source.client.list_objects_v2

    def spy(**kw: object) -> dict:
        response = real(**kw)
        calls.append({**kw, "truncated": response.get("IsTruncated")})
        return response

    monkeypatch.setattr(source.client, "list_objects_v2", spy)
    refs = list(source.list(ALL))
    assert len(refs) == 4
    assert any(c.get("ContinuationToken") for c in calls)  # later pages were requested
    assert all(c.get("MaxKeys") in (2, 1) for c in calls)


def test_revision_follows_content(zoo: Path, s3_bucket: tuple, moto_endpoint: str) -> None:
    client, bucket = s3_bucket
    upload_tree(client, bucket, zoo, "zoo")
    source = _source(moto_endpoint, bucket)
    before = {r.repo_id: r.revision for r in source.list()}
    lora = write_lora(zoo / "new.safetensors", "base", seed=77).read_bytes()
    client.put_object(Bucket=bucket, Key="zoo/lora-3/pytorch_lora_weights.safetensors", Body=lora)
    after = {r.repo_id: r.revision for r in source.list()}
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {f"{bucket}/zoo/lora-3"}
    assert source.get(f"{bucket}/zoo/lora-3").revision == after[f"{bucket}/zoo/lora-3"]
    with pytest.raises(RefNotFoundError):
        source.get(f"{bucket}/zoo/lora-3", before[f"{bucket}/zoo/lora-3"])


def test_pull_from_s3_with_bad_checkpoints_mixed_in(
    zoo: Path, s3_bucket: tuple, moto_endpoint: str, tmp_path: Path
) -> None:
    client, bucket = s3_bucket
    canary = tmp_path / "canary"
    write_malicious_pickle(zoo / "evil" / "pytorch_lora_weights.bin", canary)
    (zoo / "evil" / "dmsec_model.json").write_text('{"kind": "lora"}')
    write_truncated_safetensors(zoo / "cut_lora.safetensors")
    write_lying_header(zoo / "liar" / "lora.safetensors")
    upload_tree(client, bucket, zoo, "zoo")
    source = _source(moto_endpoint, bucket)
    puller = Puller(tmp_path / "cache", PullPolicy(allow_pickle=True))
    results = {r.ref.repo_id.split("/", 2)[2]: r for r in puller.pull_all(source, source.list())}
    assert {k for k, r in results.items() if r.ok} == {"full-7", "lora-3", "lora-5"}
    assert "posix.system" in (results["evil"].error or "")
    assert "truncated" in (results["cut_lora.safetensors"].error or "")
    assert "64 bytes" in (results["liar/lora.safetensors"].error or "")
    assert not canary.exists()
    pulled = results["lora-3"].file_path("pytorch_lora_weights.safetensors")
    assert pulled.read_bytes() == (zoo / "lora-3" / "pytorch_lora_weights.safetensors").read_bytes()


def test_oversized_object_is_refused(s3_bucket: tuple, moto_endpoint: str, tmp_path: Path) -> None:
    client, bucket = s3_bucket
    write_lora(tmp_path / "a.safetensors")
    client.put_object(
        Bucket=bucket, Key="m/a_lora.safetensors", Body=(tmp_path / "a.safetensors").read_bytes()
    )
    source = _source(moto_endpoint, bucket, "m")
    (ref,) = source.list()
    result = Puller(tmp_path / "cache", PullPolicy(max_file_bytes=64)).pull(source, ref)
    assert result.status == "refused" and "per-file cap of 64" in (result.error or "")


def test_checksum_sha256_is_verified(
    s3_bucket: tuple, moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, bucket = s3_bucket
    data = write_lora(tmp_path / "a.safetensors").read_bytes()
    client.put_object(
        Bucket=bucket, Key="m/a_lora.safetensors", Body=data, ChecksumAlgorithm="SHA256"
    )
    source = _source(moto_endpoint, bucket, "m")
    (ref,) = source.list()
    assert Puller(tmp_path / "c1").pull(source, ref).ok
    real_get = source.client.get_object

    def corrupt_checksum(**kw: object) -> dict:
        obj = real_get(**kw)
        assert obj.get("ChecksumSHA256"), "moto should return the stored checksum"
        return {**obj, "ChecksumSHA256": "AAAA" + obj["ChecksumSHA256"][4:]}

    monkeypatch.setattr(source.client, "get_object", corrupt_checksum)
    result = Puller(tmp_path / "c2").pull(source, ref)
    assert result.status == "refused" and "ChecksumSHA256" in (result.error or "")


def test_uri_and_validation(moto_endpoint: str) -> None:
    source = source_from_uri("s3://bucket/a/b/", endpoint_url=moto_endpoint)
    assert isinstance(source, S3Source) and source.uri == "s3://bucket/a/b/"
    with pytest.raises(RefNotFoundError, match="not in bucket"):
        source.get("other-bucket/a/b/x")
