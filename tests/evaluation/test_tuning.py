"""The tuning rule: a setting is chosen on the tuning split only, with the same rule for a method
and its baseline; reporting-split figures never move a choice."""

from __future__ import annotations

import pytest

from dmsec.errors import ConfigError
from dmsec.evaluation import REPORTING, TUNING, Trial, choose_setting, smallest_within, sweep_table


def _trials(split: str, method: str, scores: dict[float, list[float]], group: str = "full") -> list[Trial]:  # fmt: skip
    return [Trial(split, method, group, s, f"ckpt-{i}", a, 0.5) for s, vals in scores.items() for i, a in enumerate(vals)]  # fmt: skip


def test_the_best_mean_primary_on_the_tuning_split_is_chosen():
    trials = _trials(TUNING, "baseline", {1.0: [0.2, 0.4], 2.0: [0.6, 0.4], 3.0: [0.0, 0.2]})
    choice = choose_setting(trials, "baseline", "full")
    assert (choice.setting, choice.primary, choice.n_units) == (2.0, 0.5, 2)
    assert choice.grid == (1.0, 2.0, 3.0)


def test_reporting_split_figures_never_change_the_choice():
    tuning = _trials(TUNING, "finextract", {1.0: [0.2, 0.4], 1.5: [0.6, 0.4]})
    # on the reporting split w 1.0 would win by far: it must not matter
    reporting = _trials(REPORTING, "finextract", {1.0: [1.0, 1.0], 1.5: [0.0, 0.0], 9.0: [1.0, 1.0]})  # fmt: skip
    alone = choose_setting(tuning, "finextract", "full")
    mixed = choose_setting(reporting + tuning + reporting, "finextract", "full")
    assert alone == mixed and mixed.setting == 1.5 and 9.0 not in mixed.grid


def test_no_tuning_trial_is_an_error_not_a_default():
    reporting = _trials(REPORTING, "baseline", {3.0: [0.5]})
    with pytest.raises(ConfigError, match="no tuning-split trial"):
        choose_setting(reporting, "baseline", "full")
    with pytest.raises(ConfigError, match="no tuning-split trial"):
        choose_setting(_trials(TUNING, "baseline", {3.0: [0.5]}), "baseline", "lora")


def test_method_and_baseline_get_the_same_rule_on_the_same_numbers():
    scores = {1.0: [0.4, 0.4], 2.0: [0.4, 0.4], 3.0: [0.2, 0.6]}  # a three-way tie on the mean
    ours = choose_setting(_trials(TUNING, "finextract", scores, "lora"), "finextract", "lora")
    theirs = choose_setting(_trials(TUNING, "baseline", scores, "lora"), "baseline", "lora")
    assert ours.setting == theirs.setting


def test_ties_go_to_the_secondary_score_then_the_smaller_setting():
    trials = [Trial(TUNING, "m", "g", 1.0, "a", 0.5, 0.80), Trial(TUNING, "m", "g", 2.0, "a", 0.5, 0.90),  # fmt: skip
              Trial(TUNING, "m", "g", 3.0, "a", 0.5, 0.90)]  # fmt: skip
    assert choose_setting(trials, "m", "g").setting == 2.0


def test_groups_and_methods_do_not_mix():
    trials = _trials(TUNING, "baseline", {1.0: [1.0], 3.0: [0.0]}, group="full")
    trials += _trials(TUNING, "baseline", {1.0: [0.0], 3.0: [1.0]}, group="lora")
    trials += _trials(TUNING, "finextract", {5.0: [1.0]}, group="full")
    assert choose_setting(trials, "baseline", "full").setting == 1.0
    assert choose_setting(trials, "baseline", "lora").setting == 3.0
    assert sweep_table(trials, "baseline", "full") == {1.0: (1.0, 0.5, 1), 3.0: (0.0, 0.5, 1)}


def test_settings_run_on_unequal_units_are_refused():
    trials = _trials(TUNING, "baseline", {1.0: [0.2, 0.4], 2.0: [0.9]})
    with pytest.raises(ConfigError, match="different numbers of units"):
        choose_setting(trials, "baseline", "full")


def test_a_trial_names_a_known_split_and_finite_scores():
    with pytest.raises(ConfigError, match="split"):
        Trial("test", "m", "g", 1.0, "a", 0.5)
    with pytest.raises(ConfigError, match="finite"):
        Trial(TUNING, "m", "g", 1.0, "a", float("nan"))


def test_smallest_within_picks_the_cheapest_setting_near_the_best():
    # the art zoo's PGD-steps rule: AUC after 50/100/200/300 steps of the tuning run
    assert smallest_within({50: 0.995, 100: 0.998, 200: 0.999, 300: 0.998}, 0.01) == 50
    assert smallest_within({50: 0.90, 100: 0.95, 200: 0.999}, 0.01) == 200
    with pytest.raises(ConfigError, match="empty"):
        smallest_within({}, 0.01)
    with pytest.raises(ConfigError, match="tolerance"):
        smallest_within({1: 1.0}, -1)
