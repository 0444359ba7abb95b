"""The ledger: reruns list only new or changed checkpoints; writes are atomic; schema is fixed."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hub_builders import write_lora, write_lora_folder

from dmsec.errors import ConfigError
from dmsec.hub import Ledger, Puller, scan_config_hash
from dmsec.hub.ledger import LEDGER_SCHEMA, weights_digest
from dmsec.hub.local import LocalSource
from dmsec.hub.ref import CheckpointFile, CheckpointRef


@dataclass(frozen=True)
class _ScanConfig:
    guidance: float = 1.5
    top_k: int = 8


def test_config_hash_is_stable_and_sensitive() -> None:
    assert scan_config_hash(_ScanConfig()) == scan_config_hash({"top_k": 8, "guidance": 1.5})
    assert scan_config_hash(_ScanConfig(top_k=9)) != scan_config_hash(_ScanConfig())
    assert len(scan_config_hash(_ScanConfig())) == 16


def test_second_listing_of_an_unchanged_source_yields_nothing(zoo: Path, tmp_path: Path) -> None:
    source, ledger = LocalSource(zoo), Ledger(tmp_path / "results" / "ledger.parquet")
    config = scan_config_hash(_ScanConfig())
    first = list(ledger.pending(source.list(), config))
    assert {r.repo_id for r in first} == {"full-7", "lora-3", "lora-5"}
    results = list(Puller(tmp_path / "cache").pull_all(source, first))
    ledger.mark_many([(r.ref, r.status) for r in results], config)
    assert list(ledger.pending(source.list(), config)) == []
    # a fresh Ledger object reading the same file agrees (nothing lives only in memory)
    assert (
        list(Ledger(tmp_path / "results" / "ledger.parquet").pending(source.list(), config)) == []
    )


def test_new_changed_and_rescanned_checkpoints_are_listed_again(zoo: Path, tmp_path: Path) -> None:
    source, ledger = LocalSource(zoo), Ledger(tmp_path / "ledger.parquet")
    ledger.mark_many([(r, "ok") for r in source.list()], "cfg1")
    write_lora(zoo / "lora-3" / "pytorch_lora_weights.safetensors", "../base", seed=42)
    write_lora_folder(zoo / "lora-8", "../base", seed=8)
    assert {r.repo_id for r in ledger.pending(source.list(), "cfg1")} == {"lora-3", "lora-8"}
    # another scan config has scanned nothing yet
    assert len(list(ledger.pending(source.list(), "cfg2"))) == 4


def test_failed_pulls_are_retried_refused_ones_are_not(zoo: Path, tmp_path: Path) -> None:
    source, ledger = LocalSource(zoo), Ledger(tmp_path / "ledger.parquet")
    refs = {r.repo_id: r for r in source.list()}
    ledger.mark(refs["lora-3"], "c", "failed")
    ledger.mark(refs["lora-5"], "c", "refused")
    ledger.mark(refs["full-7"], "c", "ok")
    assert [r.repo_id for r in ledger.pending(source.list(), "c")] == ["lora-3"]
    assert list(ledger.pending(source.list(), "c", retry_statuses=())) == []
    ledger.mark(refs["lora-3"], "c", "ok")  # last status wins, one row per key
    assert ledger.status_of(refs["lora-3"], "c") == "ok"
    assert len(ledger.entries()) == 3


def test_file_matches_the_schema_and_writes_leave_no_temp_files(zoo: Path, tmp_path: Path) -> None:
    path = tmp_path / "ledger.parquet"
    ledger = Ledger(path)
    when = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    ledger.mark_many([(r, "ok") for r in LocalSource(zoo).list()], "c", scanned_at=when)
    table = pq.read_table(path)
    assert table.schema.equals(LEDGER_SCHEMA)
    assert table.num_rows == 3 and set(table.column("scanned_at").to_pylist()) == {when}
    assert sorted(p.name for p in tmp_path.iterdir() if "ledger" in p.name) == [
        "ledger.parquet",
        "ledger.parquet.lock",
    ]


def test_concurrent_writers_lose_no_rows(zoo: Path, tmp_path: Path) -> None:
    refs = list(LocalSource(zoo).list())
    path = tmp_path / "ledger.parquet"

    def writer(config: str) -> None:
        book = Ledger(path)
        for ref in refs:
            book.mark(ref, config, "ok")

    threads = [threading.Thread(target=writer, args=(f"cfg{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(Ledger(path).entries()) == 4 * len(refs)


def test_validation_names_the_field(zoo: Path, tmp_path: Path) -> None:
    ref = next(LocalSource(zoo).list())
    with pytest.raises(ConfigError, match="`status`"):
        Ledger(tmp_path / "l.parquet").mark(ref, "c", "")
    with pytest.raises(ConfigError, match="`config_hash`"):
        Ledger(tmp_path / "l.parquet").mark(ref, "", "ok")
    with pytest.raises(ConfigError, match="`path`"):
        Ledger("")


def test_ledger_on_s3(zoo: Path, s3_bucket: tuple, moto_endpoint: str) -> None:
    """Beside results on S3: pyarrow's S3 file system against the moto server."""
    import pyarrow.fs as pafs

    _, bucket = s3_bucket
    fs = pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        endpoint_override=moto_endpoint,
        scheme="http",
    )
    source = LocalSource(zoo)
    ledger = Ledger(f"{bucket}/results/ledger.parquet", filesystem=fs)
    assert len(list(ledger.pending(source.list(), "c"))) == 3
    ledger.mark_many([(r, "ok") for r in source.list()], "c")
    assert list(ledger.pending(source.list(), "c")) == []


def _hf_ref(revision: str, readme: str, weights: str = "a" * 64) -> CheckpointRef:
    files = (
        CheckpointFile("pytorch_lora_weights.safetensors", 10, sha256=weights),
        CheckpointFile("README.md", 5, git_sha1=readme),
    )
    return CheckpointRef("hf", "org/lora", revision, "lora", files=files)


def test_a_new_revision_with_the_same_weights_is_unchanged(tmp_path: Path) -> None:
    """The ledger keeps the weights' hash: a README-only commit is recognised, a new weights file
    or another scan config is not, and neither is a source that declares no hashes."""
    ledger = Ledger(tmp_path / "ledger.parquet")
    first = _hf_ref("1" * 40, readme="b" * 40)
    ledger.mark(first, "cfg", "ok")
    assert weights_digest(first) == weights_digest(_hf_ref("2" * 40, readme="c" * 40))
    same = ledger.unchanged(_hf_ref("2" * 40, readme="c" * 40), "cfg")
    assert same is not None and same.revision == first.revision and same.status == "ok"
    assert ledger.unchanged(_hf_ref("2" * 40, readme="c" * 40, weights="d" * 64), "cfg") is None
    assert ledger.unchanged(_hf_ref("2" * 40, readme="c" * 40), "other-cfg") is None
    assert ledger.unchanged(first, "cfg") is None  # the same revision is `pending`'s business
    no_hash = CheckpointRef("local", "x", "r2", "lora", files=(CheckpointFile("w.safetensors", 3),))  # fmt: skip
    assert weights_digest(no_hash) is None and ledger.unchanged(no_hash, "cfg") is None
    ledger.mark(first, "cfg", "failed")  # to be retried: not a reason to skip anything
    assert ledger.unchanged(_hf_ref("2" * 40, readme="c" * 40), "cfg") is None


def test_a_ledger_written_before_the_weights_column_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "ledger.parquet"
    old = pa.schema([f for f in LEDGER_SCHEMA if f.name != "weights_sha256"])
    row = {"source": "hf", "repo_id": "org/lora", "revision": "1" * 40,
           "scan_config_hash": "cfg", "scanned_at": datetime.now(UTC), "status": "ok"}  # fmt: skip
    pq.write_table(pa.Table.from_pylist([row], schema=old), path)
    ledger = Ledger(path)
    (entry,) = ledger.entries()
    assert entry.weights_sha256 is None and ledger.scanned("cfg") == {("hf", "org/lora", "1" * 40)}
    ledger.mark(_hf_ref("2" * 40, "b" * 40), "cfg", "ok")
    assert len(ledger.entries()) == 2
