"""benchmarks/spot.py runs end to end through its own CLI on tiny graphs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "spot.py"


@pytest.mark.slow
def test_benchmark_prints_the_summary_line(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    args = [
        "--sizes",
        "6,8",
        "--seeds",
        "1",
        "--samples",
        "300",
        "--max-seconds",
        "20",
        "--side-sizes",
        "6",
        "--tables",
        "reporting:std,reporting:raw,tuning:std,tuning:raw",
        "--workers",
        "2",
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        r"skeleton-F1@8 spot=[\d.]+ unguided=[\d.]+ fci=[\d.]+ posterior=[\d.]+ seconds=[\d.]+",
        last,
    ), last
    assert "ratio spot/FCI" in proc.stdout and out.is_file()
    for header in ("[reporting split, std scale] d=8", "[tuning split, raw scale] d=6"):
        assert header in proc.stdout
    assert "[tuning split, raw scale] d=8" not in proc.stdout  # side tables: --side-sizes only
    assert re.fullmatch(
        r"headline: reporting split, standardised scale, d=8; unguided = unguided\((def|tuned)\); "
        r"FCI finished 1 of 1 runs within the budget",
        proc.stdout.strip().splitlines()[-2],
    )
    assert "chosen on the tuning split" in proc.stdout and "posterior" in proc.stdout


def test_unguided_settings_are_the_spec_defaults_or_the_named_ones() -> None:
    import dataclasses
    import importlib.util

    from dmsec.causal.learner import MAGLearnerConfig
    from dmsec.causal.spot import SPOTConfig

    spec = importlib.util.spec_from_file_location("spot_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    config = SPOTConfig()
    config = dataclasses.replace(config, learner=dataclasses.replace(config.learner, max_seconds=30.0))  # fmt: skip
    tuned = SPOTConfig(learner=MAGLearnerConfig(penalty=0.11, w_threshold=0.07))
    own = bench._unguided_config("unguided", config, tuned).learner
    assert (own.penalty, own.w_threshold) == (0.05, 0.05)  # the spec's defaults, whatever is tuned
    assert own.standardize and own.max_seconds == 30.0  # the run's scale and budget
    assert bench._unguided_config("unguided_spot", config, tuned) == config  # SPOT's settings
    searched = bench._unguided_config("unguided_tuned", config, tuned).learner
    assert (searched.penalty, searched.w_threshold, searched.max_seconds) == (0.11, 0.07, 30.0)
