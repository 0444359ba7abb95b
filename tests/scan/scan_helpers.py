"""Hubs for scan tests: copies of the small zoo, optionally with broken checkpoints added."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from dmsec.scan.config import ScanConfig, config_from_dict
from dmsec.scan.local import local_executor


def make_hub(root: Path, zoo: Any, names: list[str] | None = None) -> Path:
    """A local hub holding the zoo's base and fine-tunes `names` (default: all)."""
    keep = {"base", *(names or [e.name for e in zoo.fine_tunes])}
    root.mkdir(parents=True)
    for entry in zoo.entries:
        if entry.name in keep:
            shutil.copytree(zoo.root / entry.path, root / entry.path)
    return root


def add_truncated_lora(hub: Path, zoo: Any, name: str = "corrupt-lora") -> str:
    """A LoRA whose safetensors file lost its second half (caught when pulled)."""
    lora = next(e for e in zoo.fine_tunes if e.kind == "lora")
    folder = hub / name
    folder.mkdir()
    (folder / "dmsec_model.json").write_text(
        (zoo.root / lora.path / "dmsec_model.json").read_text()
    )
    data = (zoo.root / lora.path / "pytorch_lora_weights.safetensors").read_bytes()
    (folder / "pytorch_lora_weights.safetensors").write_bytes(data[: len(data) // 2])
    return name


def add_misfit_lora(hub: Path, name: str = "misfit-lora") -> str:
    """A well-formed LoRA file whose tensors fit no layer of the base (fails when loaded)."""
    folder = hub / name
    folder.mkdir()
    card = {"kind": "lora", "base_model": "../base", "null_class": 10, "instance_class": 11}
    (folder / "dmsec_model.json").write_text(json.dumps(card))
    tensors = {"base_model.model.nowhere.lora_A.weight": torch.zeros(4, 7)}
    save_file(tensors, folder / "pytorch_lora_weights.safetensors", metadata={"format": "pt"})
    return name


def scan_config(hub: Path, registry: Path, out: Path, cache: Path, **sections: dict[str, Any]) -> ScanConfig:  # fmt: skip
    """A scan config for tests: this hub, registry and results folder; `sections` override."""
    data: dict[str, Any] = {
        "source": {"uri": str(hub)},
        "registry": {"location": str(registry)},
        "results": {"out": str(out)},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    data.setdefault("run", {}).setdefault("cache_dir", str(cache))
    return config_from_dict(data)


class Crash(RuntimeError):
    """The machine (or pod) went away mid-scan."""


def crashing_after(n: int):
    """The local executor, raising `Crash` once `n` items have been yielded."""

    def executor(items, resolved, staging):
        for done, item in enumerate(local_executor(items, resolved, staging)):
            if done == n:
                raise Crash("the machine went away")
            yield item

    return executor


# -- dmsec as `pip install <repo>` gives it ----------------------------------------------------
ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "dmsec", "pipelines")


def run_checked(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> str:
    """stdout of a command that must succeed (its output tails are the failure message)."""
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _wheel(tmp: Path, env: dict[str, str]) -> Path:
    """A wheel built from a clean copy of the package sources (no build/ in the checkout)."""
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    run_checked([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "--no-index", "-q", "-w", str(tmp / "dist"), str(src)], tmp, env)  # fmt: skip
    (wheel,) = (tmp / "dist").glob("dmsec-*.whl")
    return wheel


def installed_venv(tmp: Path, env: dict[str, str]) -> Path:
    """A fresh venv at `tmp/venv` with dmsec from a wheel of this checkout installed (not
    editable), so `dmsec` and `dmsec_pipelines` load from its own site-packages, never from the
    checkout. The dependencies (torch, ray, ...) are not installed again: a `.pth` file puts this
    interpreter's site-packages after the venv's own (nothing is downloaded)."""
    wheel = _wheel(tmp, env)
    venv = tmp / "venv"
    run_checked([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, env)
    python = venv / "bin" / "python"
    run_checked([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                 "--no-index", "-q", str(wheel)], tmp, env)  # fmt: skip
    site = run_checked([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env).strip()  # fmt: skip
    (Path(site) / "zz_dmsec_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # fmt: skip
    return venv


# -- the golden findings: a canonical projection of a scan's tables ---------------------------
GOLDEN = Path(__file__).with_name("golden_findings.json")
_DROPPED = {
    # per run or per machine: ids of the run, times, where files were, which device
    "scan_id", "revision", "url", "ref_json", "started_at", "finished_at", "matched_at",
    "pull_s", "extract_s", "match_s", "authenticate_s", "device", "artwork_source_uri",
    # derived from the config hash (the config's shape is not a finding); rows are keyed by
    # what these ids stand for instead: (repo_id, rank) and (repo_id, rank, artwork_id)
    "scan_config_hash", "candidate_id", "match_id",
}  # fmt: skip


def _canonical_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return "sha256:" + hashlib.sha256(value).hexdigest()
    if isinstance(value, float):
        return float.hex(value)  # exact in the file; `golden_mismatches` compares within tolerance
    return value


def canonical_projection(out: Path, hub: Path) -> dict[str, list[dict[str, Any]]]:
    """Every committed row of the three tables at `out`, without what changes from run to run
    (see `_DROPPED`), images as sha256 of their PNG bytes, floats exactly (hex), rows sorted by
    what they are about; `hub`'s path is replaced by "<hub>" in error messages."""
    import pyarrow.parquet as pq

    keys = {"checkpoints": ("repo_id",), "candidates": ("repo_id", "rank"),
            "matches": ("repo_id", "candidate_rank", "artwork_id")}  # fmt: skip
    projection: dict[str, list[dict[str, Any]]] = {}
    for table, key in keys.items():
        rows = []
        for row in pq.read_table(out / table).to_pylist():
            row.pop("scan_date", None)
            kept = {k: _canonical_value(v) for k, v in sorted(row.items()) if k not in _DROPPED}
            for k, v in kept.items():
                if isinstance(v, str):
                    kept[k] = v.replace(str(hub), "<hub>")
            rows.append(kept)
        projection[table] = sorted(rows, key=lambda r: tuple(r[k] for k in key))
    return projection


class _SystemCall:
    """Unpickling this runs `os.system(<command>)`: the classic hub attack."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        import os

        return (os.system, (self.command,))


def add_pickle_full(hub: Path, zoo: Any, name: str, canary: Path | None = None) -> str:
    """A copy of the zoo's first full fine-tune whose UNet weights are a pickle (`.bin`, as
    `torch.save` writes them) instead of safetensors; with `canary`, the pickle also carries a
    payload whose unpickling would create that file."""
    from safetensors.torch import load_file

    full = next(e for e in zoo.fine_tunes if e.kind == "full")
    folder = hub / name
    shutil.copytree(zoo.root / full.path, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state: dict[str, Any] = dict(load_file(weights))
    if canary is not None:
        state["payload"] = _SystemCall(f"touch {canary}")
    torch.save(state, weights.with_suffix(".bin"))
    weights.unlink()
    return name


# -- what the golden comparison means -----------------------------------------------------------
# Scores (similarities, CGI-DM scores, loss gaps) are floats computed from a zoo trained on this
# machine: a zoo trained elsewhere (another CPU, another torch thread count) differs in the last
# bits of its weights, and so do the scores. They are compared within SCORE_RTOL (relative) /
# SCORE_ATOL (absolute, for values near 0). Measured (benchmarks/README.md, "Golden scan
# projection tolerance"): a small zoo rebuilt with one torch thread instead of two moves scores by
# at most 1.45e-6 relative, the scan's executor (in process vs Ray workers) similarities by 1.43e-6;
# 1e-4 leaves ~70x headroom. Everything else — row counts, ids (repo, rank, artwork), statuses,
# errors, counts and settings — must be equal.
SCORE_RTOL = 1e-4
SCORE_ATOL = 1e-6
# Generated pixels: PNG bytes and perceptual hashes of generated images follow the weights' last
# bits (a pixel at a rounding edge flips one 8-bit level), so they are not compared bit for bit.
RENDERED = {"image", "image_sha256", "pdq", "evidence_image", "recovered_image"}
# A group's representative (its medoid): in a group of two both members are equally central, so
# which generation represents it is a tie broken by float noise. Compared for larger groups only.
REPRESENTATIVE = {"sample_index", "seed"}


def _as_float(value: Any) -> float | None:
    if isinstance(value, str) and value.startswith(("0x", "-0x")) and "p" in value:
        return float.fromhex(value)
    return None


def golden_mismatches(projection: dict[str, list[dict[str, Any]]],
                      golden: dict[str, list[dict[str, Any]]]) -> list[str]:  # fmt: skip
    """Every difference that matters between a scan's canonical projection and the golden one:
    row counts per table, then per row (in canonical order) any field that differs — scores
    beyond SCORE_RTOL / SCORE_ATOL, anything else at all (RENDERED fields skipped, and the
    REPRESENTATIVE of a two-member group)."""
    import math

    sizes = {(c["repo_id"], c["rank"]): c["group_size"] for c in golden.get("candidates", [])}
    out = []
    for table in sorted(set(golden) | set(projection)):
        got, want = projection.get(table, []), golden.get(table, [])
        if len(got) != len(want):
            out.append(f"{table}: {len(got)} rows, golden {len(want)}")
            continue
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            rank = w.get("rank", w.get("candidate_rank"))
            tie = sizes.get((w.get("repo_id"), rank), 3) <= 2
            for key in sorted(set(g) | set(w)):
                if key in RENDERED or (tie and key in REPRESENTATIVE):
                    continue
                a, b = g.get(key, "<missing>"), w.get(key, "<missing>")
                fa, fb = _as_float(a), _as_float(b)
                if fa is not None and fb is not None:
                    if not math.isclose(fa, fb, rel_tol=SCORE_RTOL, abs_tol=SCORE_ATOL):
                        out.append(f"{table}[{i}] {key}: {fa!r} vs golden {fb!r} (rel {abs(fa - fb) / max(abs(fb), 1e-300):.1e})")  # fmt: skip
                elif a != b:
                    out.append(f"{table}[{i}] {key}: {a!r} vs golden {b!r}")
    return out
