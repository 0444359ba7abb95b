"""The scan config: YAML equals the embedded default, unknown keys and bad values name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmsec.errors import ConfigError
from dmsec.scan.config import ScanConfig, config_from_dict, load_scan_config

DEFAULT_YAML = Path(__file__).parents[2] / "configs" / "scan.yaml"


def test_configs_scan_yaml_is_the_embedded_default():
    assert load_scan_config(DEFAULT_YAML) == ScanConfig() == load_scan_config(None)


def test_unknown_keys_are_errors_naming_the_dotted_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key `extract.n_sample`"):
        load_scan_config(None, ["extract.n_sample=3"])
    with pytest.raises(ConfigError, match="unknown key `colour`"):
        config_from_dict({"colour": 1})
    path = tmp_path / "c.yaml"
    path.write_text("run:\n  executr: local\n")
    with pytest.raises(ConfigError, match="unknown key `run.executr`"):
        load_scan_config(path)


def test_set_overrides_are_yaml_values_and_type_checked():
    c = load_scan_config(DEFAULT_YAML, ["extract.w=1.5", "source.kinds=[lora]", "registry.location=null", "run.extract_actors=1"])  # fmt: skip
    assert c.extract.w == 1.5 and c.source.kinds == ("lora",) and c.registry.location is None
    assert c.run.extract_actors == 1
    with pytest.raises(ConfigError, match="`extract.n_samples` must be int; got 'many'"):
        load_scan_config(None, ["extract.n_samples=many"])
    with pytest.raises(ConfigError, match="`--set` expects key=value"):
        load_scan_config(None, ["extract.n_samples"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("extract.n_samples=0", "`extract.n_samples` must be >= 1"),
        ("methods.extractor=magic", "`methods.extractor` must be one of"),
        ("methods.verifier=magic", "`methods.verifier` must be one of"),
        ("extract.top_k=3", "`extract.top_k` must be null in a scan"),
        (
            "extract.defaults=sd3",
            "`extract.defaults` must be a list of \\[kind, w, k\\] or a preset",
        ),
        ("extract.defaults=[[full, 1.5]]", "`extract.defaults\\[0\\]` must have 3 items"),
        (
            "authenticate.pretrained_condition=both",
            "`authenticate.pretrained_condition` must be one of",
        ),
        ("pull.max_file_bytes=0", "`pull.max_file_bytes` must be a positive int"),
        ("source.kinds=[base]", "`source.kinds` must be a non-empty subset"),
        ("source.since=yesterday", "`source.since` must be an ISO date"),
        ("run.executor=spark", "`run.executor` must be one of"),
        ("run.cpus_per_actor=0", "`run.cpus_per_actor` must be > 0"),
        ("authenticate.steps=0", "`authenticate.steps` must be >= 1"),
        ("results.flush_every=0", "`results.flush_every` must be >= 1"),
    ],
)
def test_validation_names_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load_scan_config(None, [override])


def test_guidance_presets():
    from dmsec.extract import PAPER_DEFAULTS
    from dmsec.zoo.config import ZOO_GUIDANCE

    assert ScanConfig().extract.defaults is None  # chosen per checkpoint from its model
    zoo = load_scan_config(None, ["extract.defaults=zoo"]).extract.defaults
    assert {k: (w, kk) for k, w, kk in zoo} == ZOO_GUIDANCE
    paper = load_scan_config(None, ["extract.defaults=paper"]).extract.defaults
    assert {k: (w, kk) for k, w, kk in paper} == PAPER_DEFAULTS
    explicit = load_scan_config(None, ["extract.defaults=[[full, 2, 0], [lora, 3, -0.1]]"])
    assert explicit.extract.defaults == (("full", 2.0, 0.0), ("lora", 3.0, -0.1))


def test_sections_are_the_library_configs_stages_take_as_they_are(tmp_path):
    """No copies: what a stage is built with is the section object itself."""
    from dmsec.authenticate import CgiDmConfig
    from dmsec.extract import ExtractConfig
    from dmsec.hub import PullPolicy
    from dmsec.scan.resolve import ResolvedScan

    c = load_scan_config(None, ["extract.n_samples=9", "authenticate.steps=7", "pull.allow_pickle=true"])  # fmt: skip
    assert isinstance(c.pull, PullPolicy) and isinstance(c.extract, ExtractConfig)
    assert isinstance(c.authenticate, CgiDmConfig)
    assert c.extract.steps == 25 and c.authenticate.baseline_draws == 32  # the scan's defaults kept
    resolved = ResolvedScan(c, "hub", None, "reg", "zoo", 0.9, "h")
    assert resolved.stage_kwargs("pull", tmp_path)["policy"] is c.pull
    assert resolved.stage_kwargs("extract", tmp_path)["config"] is c.extract
    assert resolved.stage_kwargs("authenticate", tmp_path)["config"] is c.authenticate
    assert resolved.stage_kwargs("match", tmp_path)["settings"] is c.match
    assert c.replace(run={"executor": "local"}).run.executor == "local"


def test_source_bases_reach_the_pull_stage_and_bad_entries_name_the_field(tmp_path):
    from dmsec.scan.config import config_from_dict
    from dmsec.scan.resolve import ResolvedScan
    from dmsec.scan.stages.pull import PullStage

    c = load_scan_config(None, ['source.bases=["SD 1.5=base", "sdxl=xl-base"]'])
    assert c.source.bases == ("SD 1.5=base", "sdxl=xl-base")
    resolved = ResolvedScan(c, str(tmp_path), None, str(tmp_path / "r"), "zoo", 0.5, "h")
    kwargs = resolved.stage_kwargs("pull", tmp_path)
    assert kwargs["bases"] == ["SD 1.5=base", "sdxl=xl-base"]
    from dmsec.hub.bases import BaseLocation

    assert PullStage(**kwargs).bases == {"sd 1.5": BaseLocation(None, "base"), "sdxl": BaseLocation(None, "xl-base")}  # fmt: skip
    with pytest.raises(ConfigError, match="`source.bases`: each entry must read name=location; got 'sd1'"):  # fmt: skip
        config_from_dict({"source": {"bases": ["sd1"]}})
    with pytest.raises(ConfigError, match="`source.bases`: a Hugging Face base must read hf://org/name@revision"):  # fmt: skip
        config_from_dict({"source": {"bases": ["sd1=hf://org/base"]}})
