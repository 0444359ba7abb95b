"""Few-shot fine-tuning (vanilla or Bayesian, full or LoRA) as a Ray Train job.

`run_finetune(job)` runs `dmsec.finetune.vanilla.FewShotTrainer` data-parallel in a
`TorchTrainer` (CPU workers here, GPUs on a cluster): each of W workers draws B/W of every
global batch from its own random stream, gradients are averaged with one all-reduce per step
(what DDP does, without wrapping the handle's network), so all workers hold the same weights.

Checkpointing and resume: every `checkpoint_every` steps (and at the end) the workers report one
Ray Train checkpoint: the training state of `dmsec.finetune.state` (rank 0: trainable tensors,
optimiser moments, trainer.json; every rank: its random generators). Running the same job again
(same `storage_path` and `run_name`) resumes from the latest checkpoint; a job may also extend a
finished run to more steps. The last checkpoint holds `model/`, the fine-tune in the zoo's format
(Bayesian runs as their mean network), which the driver copies to `job.out`.

This file is the only place Ray is imported for fine-tuning; `dmsec` stays Ray-free. Run it with
`dmsec finetune --workers N ...` (`dmsec.finetune.cli` reaches it through `dmsec.jobs`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from dmsec.errors import CheckpointError, ConfigError
from dmsec.finetune.export import base_reference, check_output_folder, save_finetune
from dmsec.finetune.vanilla import FewShotTrainer, TrainConfig
from dmsec.models.base import Condition
from dmsec.models.loading import load_model

MODEL_DIR = "model"


@dataclass(frozen=True)
class FinetuneJob:
    """One fine-tuning job: data, base, recipe, workers and where runs are stored."""

    base: str
    images: torch.Tensor = field(repr=False)  # (N, C, H, W) in [0, 1], sized for the base
    condition: Condition
    out: str
    train: TrainConfig
    workers: int = 2
    use_gpu: bool = False
    threads_per_worker: int = 1
    checkpoint_every: int = 100
    storage_path: str | None = None  # default: <out's parent>/ray_runs
    run_name: str | None = None  # default: the output folder's name

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"`workers` must be >= 1; got {self.workers}")
        if self.checkpoint_every < 1:
            raise ConfigError(f"`checkpoint_every` must be >= 1; got {self.checkpoint_every}")
        if self.threads_per_worker < 1:
            raise ConfigError(f"`threads_per_worker` must be >= 1; got {self.threads_per_worker}")
        if self.train.batch_size % self.workers:
            raise ConfigError(
                f"`batch_size` ({self.train.batch_size}) must be a multiple of `workers` "
                f"({self.workers})"
            )

    @property
    def resolved_storage(self) -> str:
        return self.storage_path or str(Path(self.out).resolve().parent / "ray_runs")

    @property
    def resolved_name(self) -> str:
        return self.run_name or Path(self.out).name

    def record(self) -> dict[str, Any]:
        """The resolved job as JSON-able data (recorded in the output's model card)."""
        data = {k: v for k, v in asdict(self).items() if k != "images"}
        data.update(
            n_images=len(self.images),
            storage_path=self.resolved_storage,
            run_name=self.resolved_name,
        )
        return data


def _average_gradients(grads: list[torch.Tensor]) -> None:
    """All-reduce the gradients as one flat bucket and divide by the world size, in place."""
    import torch.distributed as dist

    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _check_resumable(meta: dict[str, Any], config: TrainConfig, where: str) -> None:
    saved = dict(meta.get("config", {}))
    now = json.loads(json.dumps(config.to_dict(), default=str))
    saved.pop("steps", None)
    now.pop("steps")
    differ = sorted(k for k in now if saved.get(k) != now[k])
    if differ:
        raise CheckpointError(where, f"was trained with other settings: {differ}")


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: set up (or resume) the trainer, step, report checkpoints."""
    import ray.train
    import ray.train.torch

    job: FinetuneJob = loop_config["job"]
    torch.set_num_threads(job.threads_per_worker)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device() if job.use_gpu else torch.device("cpu")
    # 1. the base model and a trainer identical on every worker
    model = load_model(job.base, device=device)
    trainer = FewShotTrainer(
        model,
        job.images,
        [job.condition] * len(job.images),
        job.train,
        rank=rank,
        world_size=world,
        grad_sync=_average_gradients if world > 1 else None,
    )
    # 2. resume from the run's latest checkpoint, if any
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            from dmsec.finetune.state import read_training_meta

            _check_resumable(read_training_meta(folder), job.train, folder)
            trainer.load_state(folder)
    # 3. train, reporting a checkpoint every `checkpoint_every` steps and at the end
    total, start = job.train.steps, trainer.step
    while True:
        done = trainer.step >= total
        if not done:
            trainer.train_step()
        at_end = trainer.step >= total
        if done or at_end or trainer.step % job.checkpoint_every == 0:
            recent = trainer.losses[-job.checkpoint_every :] or [float("nan")]
            metrics = {
                "step": trainer.step,
                "start_step": start,
                "loss": sum(recent) / len(recent),
            }
            with tempfile.TemporaryDirectory() as tmp:
                trainer.save_state(tmp, workers=world)
                if at_end and rank == 0:
                    save_finetune(
                        model,
                        Path(tmp) / MODEL_DIR,
                        base_model=base_reference(job.base, job.out),
                        extra={"finetune": job.record(), "workers": world},
                        condition=job.condition,
                    )
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        if at_end:
            return


@dataclass(frozen=True)
class FinetuneResult:
    """Where the fine-tune was written, the last reported metrics and the last checkpoint."""

    out: Path
    metrics: dict[str, Any]
    checkpoint: str


def run_finetune(job: FinetuneJob) -> FinetuneResult:
    """Run `job` on the connected Ray cluster (a local one is started if none is)."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    check_output_folder(job.out)
    if not ray.is_initialized():
        ray.init(include_dashboard=False)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"job": job},
        scaling_config=ScalingConfig(
            num_workers=job.workers,
            use_gpu=job.use_gpu,
            resources_per_worker={"CPU": job.threads_per_worker},
        ),
        run_config=RunConfig(
            name=job.resolved_name,
            storage_path=job.resolved_storage,
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            failure_config=FailureConfig(max_failures=1),
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise CheckpointError(job.resolved_storage, "the run reported no checkpoint")
    out = Path(job.out)
    with result.checkpoint.as_directory() as folder:
        exported = Path(folder) / MODEL_DIR
        if not exported.is_dir():
            raise CheckpointError(folder, f"the last checkpoint has no {MODEL_DIR}/")
        if out.exists():
            shutil.rmtree(out)  # check_output_folder allowed only an earlier fine-tune here
        shutil.copytree(exported, out)
    return FinetuneResult(out, dict(result.metrics or {}), result.checkpoint.path)
