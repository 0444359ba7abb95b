"""benchmarks/extraction.py's protocol on a fake zoo (no model runs): the tuning and reporting
splits are disjoint, both methods are tuned on the same grid by the same rule from tuning runs
only, and format twins are reported as their own rows but never tuned on or averaged."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dmsec.evaluation import REPORTING, TUNING

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
GRID = (1.0, 1.5, 2.0, 3.0)


@pytest.fixture(scope="module")
def ex():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("extraction")
    finally:
        sys.path.remove(str(BENCHMARKS))


class FakeZoo:
    def __init__(self, root: str, entries: list[SimpleNamespace]) -> None:
        self.root, self.entries = Path(root), entries

    def select(self, protected: bool | None = None, split: str | None = None, **_: object) -> list:
        return [e for e in self.entries if (protected is None or e.protected == protected) and (split is None or e.split == split)]  # fmt: skip

    def train_images(self, name: str) -> torch.Tensor:
        return torch.zeros(5, 1, 16, 16)


def _digit(name: str, method: str, strength: str) -> SimpleNamespace:
    return SimpleNamespace(name=f"{name}-{strength}", set=name, method=method, strength=strength,
                           protected=True, split=None, layout=None, set_kind=None, artist=None)  # fmt: skip


def _art(name: str, method: str, strength: str, split: str, layout: str) -> SimpleNamespace:
    return SimpleNamespace(name=f"{name}-{method}-{strength}" + ("-kohya" if layout == "kohya" else ""),  # fmt: skip
                           set=name, method=method, strength=strength, protected=True, split=split,
                           layout=layout, set_kind="subject", artist="x")  # fmt: skip


def _bench(ex, zoo_kind: str, zoo: FakeZoo, quick: bool = False):
    bench = object.__new__(ex.Bench)
    bench.args = argparse.Namespace(zoo=zoo_kind, quick=quick, seed=0, n=8, device="cpu")
    bench.quick, bench.device, bench.zoo, bench.pairs = quick, "cpu", zoo, {}
    bench.thresholds, bench.headline_tau = {"tau": 0.99}, "tau"
    return bench


def _scripted(bench, best: dict[tuple[str, str], float]) -> list[tuple]:
    """Score runs so that the tuning split prefers `best[(split, method)]`; record every call."""
    calls: list[tuple] = []

    def score(run, method, setting, train):
        calls.append((run.split, run.name, run.seed, method, setting))
        a = 1.0 - abs(setting - best[(run.split, method)]) / 10
        return {"tau": a, "AS": a}

    bench.score = score
    return calls


FULL_DIGITS = [_digit(n, m, s) for n, m in (("full-7a", "full"), ("full-8a", "full"), ("lora-9a", "lora"), ("lora-7b", "lora")) for s in ("light", "heavy")]  # fmt: skip


def test_digit_zoo_tunes_on_other_sets_than_it_reports(ex):
    bench = _bench(ex, "digits", FakeZoo("/c/full-abc", FULL_DIGITS))
    tuning, reporting = bench.runs(TUNING), bench.runs(REPORTING)
    assert {r.name for r in tuning} == {"full-8a-light", "lora-7b-light"}
    assert {r.name.rsplit("-", 1)[0] for r in reporting} == {"full-7a", "lora-9a"}
    assert {r.kind for r in tuning} == {r.kind for r in reporting} == {"full", "lora"}


def test_small_digit_zoo_splits_by_noise_seeds(ex):
    small = [e for e in FULL_DIGITS if e.set in ("full-7a", "lora-9a")]
    bench = _bench(ex, "digits", FakeZoo("/c/small-abc", small), quick=True)
    tuning, reporting = bench.runs(TUNING), bench.runs(REPORTING)
    assert {r.name for r in tuning} == {r.name for r in reporting} == {"full-7a-light", "lora-9a-light"}  # fmt: skip
    # reporting noise seeds are 0..N-1 (generation_seed = seed + index): N <= 128 never reaches 1000
    assert all(r.seed == ex.SMALL_TUNING_SEED >= 128 for r in tuning) and all(r.seed == 0 for r in reporting)  # fmt: skip


def test_both_methods_are_chosen_on_tuning_runs_only_with_the_same_grid(ex, capsys):
    bench = _bench(ex, "digits", FakeZoo("/c/full-abc", FULL_DIGITS))
    # the reporting split would prefer other settings: it must not matter
    calls = _scripted(bench, {(TUNING, "finextract"): 1.5, (TUNING, "baseline"): 2.0,
                              (REPORTING, "finextract"): 3.0, (REPORTING, "baseline"): 1.0})  # fmt: skip
    chosen, trials = ex.tune(bench, GRID)
    assert all(t.split == TUNING for t in trials) and {c[0] for c in calls} == {TUNING}
    for kind in ("full", "lora"):
        assert chosen[("finextract", kind)].setting == 1.5
        assert chosen[("baseline", kind)].setting == 2.0
        assert chosen[("finextract", kind)].grid == chosen[("baseline", kind)].grid == GRID
    calls.clear()
    rows = ex.report(bench, chosen)
    assert {c[0] for c in calls} == {REPORTING}
    assert {(c[3], c[4]) for c in calls} == {("finextract", 1.5), ("baseline", 2.0)}
    assert len(rows["finextract"]) == len(rows["baseline"]) == 4  # 2 sets x light, heavy
    assert "chosen: baseline full: 2" in capsys.readouterr().out


def test_art_format_twins_are_own_rows_never_tuned_on_or_averaged(ex, capsys):
    entries = [_art(n, m, s, sp, lay) for n, sp in (("fruit", TUNING), ("marine", REPORTING))
               for m, s in (("db", "light"), ("lora", "light"), ("lora", "heavy"))
               for lay in (("peft", "kohya") if m == "lora" else ("diffusers",))]  # fmt: skip
    bench = _bench(ex, "art", FakeZoo("/c/art-abc", entries))
    tuning, reporting = bench.runs(TUNING), bench.runs(REPORTING)
    assert not any(r.twin or "kohya" in r.name for r in tuning)
    assert {r.name for r in tuning} == {"fruit-db-light", "fruit-lora-light"}
    assert [r.name for r in reporting if r.twin] == ["marine-lora-light-kohya", "marine-lora-heavy-kohya"]  # fmt: skip
    _scripted(bench, {(sp, m): 2.0 for sp in (TUNING, REPORTING) for m in ("finextract", "baseline")})  # fmt: skip
    chosen, _ = ex.tune(bench, GRID)
    rows = ex.report(bench, chosen)
    assert len(rows["finextract"]) == 3  # db light, lora light, lora heavy: twins not in means
    assert "marine-lora-light-kohya" in capsys.readouterr().out  # but printed as its own row
    quick = _bench(ex, "art", FakeZoo("/c/art-abc", entries), quick=True)
    assert {r.name for r in quick.runs(REPORTING)} == {"marine-db-light", "marine-lora-light"}


def test_art_headline_threshold_is_calibrated_on_the_tuning_splits_artists_only(ex, monkeypatch):
    import dmsec.zoo.art_build
    from dmsec import metrics

    entries = [_art("fruit", "db", "light", TUNING, "diffusers"), _art("marine", "db", "light", REPORTING, "diffusers")]  # fmt: skip
    entries[0].artist, entries[1].artist = "twemoji", "noto"
    calls = []
    monkeypatch.setattr(dmsec.zoo.art_build, "build_art_zoo", lambda *a, **k: FakeZoo("/c/art-abc", entries))  # fmt: skip
    monkeypatch.setattr(metrics, "art_copy_threshold", lambda quantile=0.95, artists=None: calls.append(artists) or 0.9)  # fmt: skip
    bench = ex.Bench(argparse.Namespace(zoo="art", quick=True, seed=0, n=8, device="cpu"))
    assert calls[0] == ("twemoji",) and bench.headline_tau.startswith("tau tuning artists twemoji")
    assert list(bench.thresholds)[1:] == ["tau all artists", "tau 0.985"]


def test_art_copy_threshold_refuses_unknown_artists():
    from dmsec import metrics
    from dmsec.errors import ConfigError

    with pytest.raises(ConfigError, match="artists"):
        metrics.art_copy_threshold(artists=("rembrandt",))
