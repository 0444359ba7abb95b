"""`dmsec finetune --images DIR --base MODEL --out DIR [--lora] [--bayesian] [--workers N]`.

Without `--workers` the run is in process (no Ray); with it, the Ray job `pipelines/finetune.py` runs the same
trainer data-parallel on Ray Train, with checkpoints and resume. Both write the zoo's formats, with
the condition trained on recorded in the output's card (`instance_prompt` / `instance_class`).
Settings left out follow the zoo recipe for the base (`dmsec.finetune.recipes`), printed once.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import click


def load_pipeline() -> ModuleType:
    """The Ray Train job (`dmsec_pipelines.finetune`), from the Ray job table."""
    from dmsec.jobs import ray_job

    return ray_job("finetune")


def _condition(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.lstrip("-").isdigit() else value


@click.command()
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False),
    required=True,
    help="Folder of PNG training images.",
)
@click.option(
    "--base",
    type=click.Path(exists=True),
    required=True,
    help="Pretrained model (a diffusers folder).",
)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--lora", is_flag=True, help="Train a LoRA adapter instead of every weight.")
@click.option("--lora-rank", type=int, default=8, show_default=True)
@click.option(
    "--lora-targets",
    type=click.Choice(["attn", "all"]),
    default=None,
    help="Modules the LoRA adapts: attn = the transformer blocks' Linears (kohya's SD default), "
    "all = those plus resnet convolutions and time-embedding projections. Default: the zoo "
    "recipe for the base (attn for Stable Diffusion, all for class-conditional UNets).",
)
@click.option(
    "--lr-schedule",
    type=click.Choice(["constant", "cosine"]),
    default=None,
    help="Learning rate: constant, or cosine decay to 0. Default: the zoo recipe for the base "
    "(cosine for Stable Diffusion, constant for class-conditional UNets).",
)
@click.option(
    "--train-text-encoder",
    is_flag=True,
    help="Also train the text encoder (full fine-tunes of text-conditional bases, as DreamBooth).",
)
@click.option("--bayesian", is_flag=True, help="Bayesian fine-tuning (arXiv 2405.19931).")
@click.option(
    "--preset",
    type=click.Choice(["scripts", "parser"]),
    default="scripts",
    show_default=True,
    help="scripts: σ=0.01, λ=0 (what the authors ran); parser: σ=0.02, λ=0.2.",
)
@click.option("--sigma-init", type=float, default=None, help="Override the preset's σ_init.")
@click.option("--sigma-prior", type=float, default=None, help="Override the preset's σ_p.")
@click.option("--kl-weight", type=float, default=None, help="Override the preset's λ.")
@click.option("--steps", type=int, default=800, show_default=True)
@click.option("--batch-size", type=int, default=10, show_default=True)
@click.option(
    "--lr",
    type=float,
    default=None,
    help="Default: the zoo recipe for the base (full 1e-4; LoRA 3e-3 Stable Diffusion, 1e-3 UNets).",
)
@click.option(
    "--condition",
    default=None,
    help="Class id or prompt the images are bound to, recorded in the output card "
    "(default: the base card's).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Run on Ray Train with this many data-parallel workers.",
)
@click.option("--checkpoint-every", type=int, default=100, show_default=True)
@click.option(
    "--storage",
    type=click.Path(file_okay=False),
    default=None,
    help="Ray run storage (default: <out's parent>/ray_runs); rerun to resume.",
)
@click.option("--run-name", default=None, help="Ray run name (default: the output's name).")
@click.option("--gpu", is_flag=True, help="Train on CUDA (one GPU per Ray worker).")
def finetune(images: str, base: str, out: str, lora: bool, lora_rank: int,
             lora_targets: str | None, lr_schedule: str | None, train_text_encoder: bool,
             bayesian: bool, preset: str, sigma_init: float | None, sigma_prior: float | None,
             kl_weight: float | None, steps: int, batch_size: int, lr: float | None,
             condition: str | None, seed: int, workers: int | None, checkpoint_every: int,
             storage: str | None, run_name: str | None, gpu: bool) -> None:  # fmt: skip
    """Few-shot fine-tune BASE on the images of a folder (vanilla or Bayesian, full or LoRA)."""
    from dmsec.errors import DmsecError
    from dmsec.finetune.bayesian import BayesConfig
    from dmsec.finetune.export import (
        check_output_folder,
        instance_condition,
        load_training_images,
    )
    from dmsec.finetune.recipes import defaults_for, lora_spec
    from dmsec.finetune.vanilla import TrainConfig
    from dmsec.models.loading import load_model

    if lora_targets is not None and not lora:
        raise click.UsageError("--lora-targets chooses what a LoRA adapts: give it with --lora")
    try:
        bayes = None
        if bayesian:
            overrides: dict[str, Any] = {
                "sigma_init": sigma_init,
                "sigma_prior": sigma_prior,
                "kl_weight": kl_weight,
            }
            bayes = replace(
                BayesConfig.preset(preset), **{k: v for k, v in overrides.items() if v is not None}
            )
        check_output_folder(out)
        model = load_model(base)
        recipe = defaults_for(model)
        targets = lora_targets or recipe.lora_targets
        schedule = lr_schedule or recipe.lr_schedule
        config = TrainConfig(
            steps=steps,
            batch_size=batch_size,
            lr=lr if lr is not None else recipe.lr(lora),
            lora=lora_spec(lora_rank, targets) if lora else None,
            seed=seed,
            bayes=bayes,
            cosine_decay=schedule == "cosine",
            train_text_encoder=train_text_encoder,
        )
        chosen = [f"lr {config.lr:g} {schedule}"] + ([f"LoRA targets {targets}"] if lora else [])
        click.echo(f"settings: {', '.join(chosen)} (options left out follow the {recipe.zoo} zoo's recipe)", err=True)  # fmt: skip
        data = load_training_images(images, model)
        cond = instance_condition(model, _condition(condition))
        if workers is None:
            folder = _run_in_process(model, data, cond, config, base, out, gpu)
        else:
            folder = _run_on_ray(base, data, cond, config, out, workers, checkpoint_every,
                                 storage, run_name, gpu)  # fmt: skip
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"fine-tune written to {folder}")


def _run_in_process(model: Any, data: Any, cond: Any, config: Any, base: str, out: str,
                    gpu: bool) -> Path:  # fmt: skip
    from dataclasses import asdict

    from dmsec.finetune.export import base_reference, save_finetune
    from dmsec.finetune.vanilla import train

    if gpu:
        model.to("cuda")
    train(model, data, [cond] * len(data), config, progress="finetune")
    record = {"train": asdict(config), "base": base, "n_images": len(data), "workers": 0}
    return save_finetune(
        model, out, base_reference(base, out), extra={"finetune": record}, condition=cond
    )


def _run_on_ray(base: str, data: Any, cond: Any, config: Any, out: str, workers: int,
                checkpoint_every: int, storage: str | None, run_name: str | None,
                gpu: bool) -> Path:  # fmt: skip
    import os

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    pipeline = load_pipeline()
    job = pipeline.FinetuneJob(
        base=base,
        images=data,
        condition=cond,
        out=out,
        train=config,
        workers=workers,
        use_gpu=gpu,
        checkpoint_every=checkpoint_every,
        storage_path=storage,
        run_name=run_name,
    )
    return Path(pipeline.run_finetune(job).out)
