"""pipelines/finetune.py on a local Ray cluster: 1 and 2 data-parallel workers write the same
kind of checkpoint, it loads back through `load_model`, and a rerun resumes the run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import ray
import torch

from dmsec.finetune.bayesian import BayesConfig
from dmsec.finetune.cli import load_pipeline
from dmsec.finetune.state import read_training_meta
from dmsec.finetune.vanilla import TrainConfig
from dmsec.models.loading import load_model
from dmsec.models.lora import LORA_WEIGHTS_NAME, LoraSpec, adapters_disabled, has_lora
from dmsec.models.safe_load import load_state_dict
from dmsec.models.unet2d import MODEL_CARD
from dmsec.zoo.config import INSTANCE_CLASS

pytestmark = pytest.mark.ray
CONFIG = TrainConfig(
    steps=2, batch_size=4, lr=1e-3, lora=LoraSpec(rank=4, alpha=4.0), bayes=BayesConfig()
)


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, object_store_memory=256 * 2**20, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def runs(ray_cluster, small_zoo, tmp_path_factory):
    """The same Bayesian LoRA job with 1 and with 2 workers."""
    pipeline = load_pipeline()
    root = tmp_path_factory.mktemp("ray_finetune")
    images = small_zoo.train_images("lora-9a-heavy")[:4]
    out = {}
    for workers in (1, 2):
        job = pipeline.FinetuneJob(
            base=str(small_zoo.path("base")), images=images, condition=INSTANCE_CLASS,
            out=str(root / f"w{workers}"), train=CONFIG, workers=workers, checkpoint_every=1,
        )  # fmt: skip
        out[workers] = (job, pipeline.run_finetune(job))
    return pipeline, out


def test_two_workers_write_the_same_kind_of_checkpoint_as_one(runs, small_zoo):
    _, out = runs
    folders = {w: result.out for w, (_, result) in out.items()}
    names = {w: sorted(p.name for p in f.iterdir()) for w, f in folders.items()}
    assert names[1] == names[2] == sorted([LORA_WEIGHTS_NAME, MODEL_CARD])
    cards = {w: json.loads((f / MODEL_CARD).read_text()) for w, f in folders.items()}
    assert cards[1]["kind"] == cards[2]["kind"] == "lora"
    assert cards[2]["extra"]["workers"] == 2
    tensors = {w: load_state_dict(f / LORA_WEIGHTS_NAME) for w, f in folders.items()}
    assert {k: v.shape for k, v in tensors[1].items()} == {
        k: v.shape for k, v in tensors[2].items()
    }
    assert not any("sigma" in k or "parametrizations" in k for k in tensors[2])
    for w, folder in folders.items():
        model = load_model(folder)  # base found through the card
        assert has_lora(model.network)
        x, t = torch.randn(2, *model.sample_shape), torch.tensor([10, 500])
        cond = model.encode_condition([INSTANCE_CLASS] * 2)
        with torch.no_grad():
            on = model.predict_noise(x, t, cond)
            with adapters_disabled(model.network):
                off = model.predict_noise(x, t, cond)
        assert not torch.equal(on, off), f"{w} worker(s): the adapter changed nothing"


def test_workers_checkpoint_their_own_random_streams(runs):
    _, out = runs
    for workers, (_, result) in out.items():
        meta = read_training_meta(result.checkpoint)
        assert meta["step"] == 2 and meta["world_size"] == workers
        files = {p.name for p in Path(result.checkpoint).iterdir()}
        assert {f"rng-rank{r}.safetensors" for r in range(workers)} <= files


def test_rerun_resumes_from_the_latest_checkpoint(runs):
    pipeline, out = runs
    job, first = out[2]
    longer = replace(job, train=replace(CONFIG, steps=3))
    result = pipeline.run_finetune(longer)
    assert result.metrics["start_step"] == 2 and result.metrics["step"] == 3
    meta = read_training_meta(result.checkpoint)
    assert meta["losses"][:2] == read_training_meta(first.checkpoint)["losses"]
