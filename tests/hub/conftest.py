"""Fixtures for hub tests: a tiny zoo on disk, the fake HF/Civitai server, a moto S3 server.

No test here touches the network: the servers listen on 127.0.0.1 on free ports and are
started and stopped by these fixtures.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_hub import FakeHub
from hub_builders import make_zoo

_SECRET_ENV = ("HF_TOKEN", "CIVITAI_API_KEY", "HF_ENDPOINT", "AWS_ENDPOINT_URL", "DMSEC_HUB_CACHE")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real tokens, endpoints or caches leak into a test."""
    for name in _SECRET_ENV + ("DMSEC_CIVITAI_ENDPOINT",):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    """A tiny zoo folder: base, full-7, lora-3, lora-5 (+ manifest.json)."""
    return make_zoo(tmp_path / "zoo")


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    """A started fake Hugging Face + Civitai server (API port and CDN port)."""
    hub = FakeHub(page_size=2).start()
    yield hub
    hub.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> tuple[object, str]:
    """(boto3 client, fresh bucket name) against the moto server, with dummy credentials."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = f"dmsec-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket
