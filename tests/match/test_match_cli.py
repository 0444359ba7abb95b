"""`dmsec index ...` through the top-level CLI."""

from __future__ import annotations

import json
from pathlib import Path

from artwork_factory import jpeg_bytes, png_bytes
from click.testing import CliRunner

from dmsec.cli import main


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["index", *args], env=env, catch_exceptions=False)


def test_index_commands_end_to_end(tmp_path: Path, artworks) -> None:
    art = tmp_path / "art"
    art.mkdir()
    for i, im in enumerate(artworks[:4]):
        (art / f"piece_{i}.png").write_bytes(png_bytes(im))
    (art / "notes.txt").write_text("not an image")
    reg = str(tmp_path / "reg")

    # both embedders named: the test searches with each (alone, 256x256 colour art gets pdq)
    embedders = ["--embedder", "pdq", "--embedder", "zoo"]
    result = run("add", str(art), "--owner", "Studio CLI", "--registry", reg, *embedders)
    assert result.exit_code == 1  # notes.txt failed; the rest were added
    assert result.output.count("added ") == 4
    assert "notes.txt" in result.output and "allowed format" in result.output
    assert "\r" not in result.output and "index add: 5/5 file" in result.stderr

    query = tmp_path / "query.jpg"
    query.write_bytes(jpeg_bytes(artworks[2].resize((128, 128))))
    result = run("search", str(query), "--json", env={"DMSEC_REGISTRY": reg})
    assert result.exit_code == 0, result.output
    hits = [json.loads(line) for line in result.output.splitlines()]
    assert [(h["artwork_id"], h["title"], h["owner"]) for h in hits] == [
        (2, "piece_2", "Studio CLI")
    ]
    assert hits[0]["embedder"] == "pdq" and hits[0]["threshold"] == 31

    result = run("search", str(query), "--embedder", "zoo", "-k", "2", "--registry", reg)
    assert result.exit_code == 0 and result.output.splitlines()[0].split("\t")[1] == "2"

    result = run("stats", "--json", "--registry", reg)
    stats = json.loads(result.output)
    assert stats["artworks"] == 4 and [e["kind"] for e in stats["embedders"]] == ["flat", "flat"]

    assert run("remove", "2", "--registry", reg).output.strip() == "removed 2"
    assert "no match" in run("search", str(query), "--registry", reg).output
    assert "Error" in run("remove", "2", "--registry", reg).output

    result = run("rebuild", "--registry", reg)
    assert result.exit_code == 0 and "pdq=flat" in result.output
    assert "3 artworks from 1 owners" in run("stats", "--registry", reg).output


def test_search_without_a_registry_explains(tmp_path: Path) -> None:
    query = tmp_path / "q.png"
    query.write_bytes(b"x")
    result = run("search", str(query), "--registry", str(tmp_path / "none"))
    assert result.exit_code != 0 and "registry.json is missing" in result.output
