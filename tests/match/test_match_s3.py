"""A registry on S3, against a local moto_server (S3-compatible) started by the fixture."""

from __future__ import annotations

import boto3
import pytest
from artwork_factory import COPY_TRANSFORMS, png_bytes

from dmsec.match import ProtectedArtworkIndex, RegistryError


def test_s3_registry_round_trip(moto_endpoint, s3_bucket, artworks) -> None:
    location = f"s3://{s3_bucket}/banks/studio"
    idx = ProtectedArtworkIndex.create(location, endpoint_url=moto_endpoint)
    report = idx.add([png_bytes(im) for im in artworks[:5]], owner="Studio S3")
    assert report.ids == [0, 1, 2, 3, 4]
    keys = {
        o["Key"]
        for o in boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(Bucket=s3_bucket)[
            "Contents"
        ]
    }
    assert keys == {
        f"banks/studio/{name}"
        for name in ("registry.json", "artworks.parquet", "pdq.faiss", "zoo.faiss")
    }
    queries = [t(artworks[3]) for t in COPY_TRANSFORMS.values()] + [artworks[7]]
    hits = idx.search(queries, embedder="pdq")
    assert {h.artwork_id for h in hits} == {3}
    assert {h.query_index for h in hits} == set(range(len(COPY_TRANSFORMS)))

    idx.remove(3)
    again = ProtectedArtworkIndex.open(location, endpoint_url=moto_endpoint)
    assert len(again) == 4
    assert again.search(queries, embedder="pdq") == [] == idx.search(queries, embedder="pdq")
    assert again.search(artworks[:5], embedder="zoo") == idx.search(artworks[:5], embedder="zoo")
    assert again.add([png_bytes(artworks[3])], owner="Studio S3").ids == [5]


def test_s3_endpoint_from_the_environment(moto_endpoint, s3_bucket, monkeypatch) -> None:
    monkeypatch.setenv("DMSEC_S3_ENDPOINT_URL", moto_endpoint)
    idx = ProtectedArtworkIndex.open(f"s3://{s3_bucket}/reg", create=True)
    assert ProtectedArtworkIndex.exists(f"s3://{s3_bucket}/reg")
    assert len(idx) == 0


def test_missing_bucket_is_a_clear_error(moto_endpoint) -> None:
    with pytest.raises(RegistryError, match="bucket 'no-such-bucket' does not exist"):
        ProtectedArtworkIndex.create("s3://no-such-bucket/reg", endpoint_url=moto_endpoint)
