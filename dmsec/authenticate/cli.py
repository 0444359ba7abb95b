"""`dmsec authenticate CHECKPOINT --base BASE IMAGES...`: CGI-DM score and loss-gap per image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True))
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--base",
    type=click.Path(exists=True),
    default=None,
    help="Pretrained model (default: the base named by the checkpoint's card).",
)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for evidence PNGs (original | masked | recovered) and evidence.json.")  # fmt: skip
@click.option("--steps", type=int, default=1000, show_default=True, help="PGD iterations.")
@click.option("--eps", type=float, default=None, help="L2 radius (default: paper's, scaled).")
@click.option("--alpha", type=float, default=None, help="Step size (default: paper's, scaled).")
@click.option("--condition", default=None,
              help="Class id or prompt (default: the fine-tune's instance class / prompt).")  # fmt: skip
@click.option("--pretrained-condition", type=click.Choice(["same", "null"]), default="same",
              show_default=True, help="Condition the pretrained model sees.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=int, default=None, help="Images per PGD batch (default: all).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
def authenticate(checkpoint: str, images: tuple[str, ...], base: str | None, out: str | None,
                 steps: int, eps: float | None, alpha: float | None, condition: str | None,
                 pretrained_condition: str, seed: int, batch_size: int | None, device: str) -> None:  # fmt: skip
    """Was each of IMAGES in the fine-tuning set of CHECKPOINT? CGI-DM evidence per image."""
    from dmsec.authenticate.evidence import authenticate as run_authenticate
    from dmsec.authenticate.inputs import to_model_images
    from dmsec.authenticate.inversion import CgiDmConfig
    from dmsec.errors import CheckpointError, DmsecError
    from dmsec.images import decode_untrusted_images
    from dmsec.models.loading import load_pair

    try:
        try:
            pair = load_pair(checkpoint, base, device=device)
        except CheckpointError as exc:
            if base is None and "base model" in str(exc):
                raise click.UsageError("--base is required: the checkpoint does not name its base model") from None  # fmt: skip
            raise
        pretrained = pair.pretrained
        decoded, errors = decode_untrusted_images(list(images))
        for err in errors:
            click.echo(f"skipped {err.source}: {err.reason}", err=True)
        if not decoded:
            raise click.ClickException("no image could be decoded")
        batch = to_model_images(pretrained, [d.pixels for d in decoded])
        config = CgiDmConfig(
            steps=steps, eps=eps, alpha=alpha, condition=_parse_condition(condition),
            pretrained_condition=pretrained_condition,  # type: ignore[arg-type]
            seed=seed, batch_size=batch_size,
        )  # fmt: skip
        evidence = run_authenticate(pair, batch, config, progress=True)
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    sources = [d.source or f"image {d.index}" for d in decoded]
    click.echo(f"CGI-DM on {len(evidence)} images ({pair.kind} pair, {steps} steps)")
    click.echo("  (cgi: similarity of recovered to original, higher = member; gap: L_pre − L_ft)")
    for source, ev in zip(sources, evidence, strict=True):
        click.echo(
            f"  cgi {ev.score:.4f}  (masked {ev.masked_score:.4f})  gap {ev.baseline_gap:+.5f}  {source}"
        )
    if out is not None:
        _write_evidence(Path(out), sources, batch, evidence, config, checkpoint, base)
        click.echo(f"evidence -> {out}")


def _parse_condition(value: str | None) -> int | str | None:
    if value is None:
        return None
    return int(value) if value.lstrip("-").isdigit() else value


def _write_evidence(out: Path, sources: list[str], images: Any, evidence: list[Any],
                    config: Any, checkpoint: str, base: str | None) -> None:  # fmt: skip
    import dataclasses

    import torch

    from dmsec.images import image_grid, save_png

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (source, ev) in enumerate(zip(sources, evidence, strict=True)):
        strip = torch.stack([images[i].cpu(), ev.masked_image, ev.recovered_image])
        name = f"evidence_{i:03d}_{Path(source).stem}.png"
        save_png(image_grid(strip, ncol=3), out / name)
        rows.append({"source": source, "cgi_score": ev.score, "masked_score": ev.masked_score,
                     "baseline_gap": ev.baseline_gap, "evidence_png": name})  # fmt: skip
    meta = {"checkpoint": checkpoint, "base": base, "config": dataclasses.asdict(config),
            "columns": "original | masked | recovered", "images": rows}  # fmt: skip
    (out / "evidence.json").write_text(json.dumps(meta, indent=2, default=str))
