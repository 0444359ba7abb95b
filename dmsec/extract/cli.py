"""`dmsec extract CHECKPOINT --base BASE --out DIR`: recovered training images as PNGs + Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import click

DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


@click.command()
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option(
    "--base",
    type=click.Path(exists=True),
    default=None,
    help="Pretrained model (needed for weights-only fine-tunes; default: the checkpoint's card).",
)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option(
    "--method",
    type=click.Choice(["finextract", "baseline"]),
    default="finextract",
    show_default=True,
)
@click.option("--n-samples", type=int, default=64, show_default=True)
@click.option("--w", type=float, default=None, help="Guidance scale w (default: 3 full, 5 LoRA).")
@click.option("--k", type=float, default=None, help="Correction k (default: -0.02 full, 0 LoRA).")
@click.option("--steps", type=int, default=50, show_default=True)
@click.option(
    "--n-groups",
    type=int,
    default=None,
    help="N0, the number of images to recover (default: estimated).",
)
@click.option(
    "--preset",
    "--guidance",
    "guidance",
    metavar="PRESET",
    default=None,
    help="Default (w, k) per kind, a guidance preset: paper (the paper's, Stable Diffusion sizes), "
    "zoo (the digit zoo's 16x16 grey models) or art (chosen on the art zoo's tuning split). "
    "Default: from the model's images (grey: zoo; colour <= 64 px: art; larger: paper).",
)
@click.option(
    "--space",
    type=click.Choice(["zoo", "art"]),
    default=None,
    help="Similarity space the generations are clustered in: zoo (grey 16x16) or art (colour). "
    "Default: from the model's images.",
)
@click.option(
    "--prompt",
    default=None,
    help="Prompt to condition the fine-tune on (default: the checkpoint card's instance prompt).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
@click.option("--dtype", type=click.Choice(sorted(DTYPES)), default="float32", show_default=True)
def extract(checkpoint: str, base: str | None, out: str, method: str, n_samples: int, w: float | None,
            k: float | None, steps: int, n_groups: int | None, guidance: str | None, space: str | None,
            prompt: str | None, seed: int, device: str, dtype: str) -> None:  # fmt: skip
    """Recover likely training images of a fine-tuned CHECKPOINT."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from dmsec.errors import DmsecError
    from dmsec.extract.base import ExtractConfig, guidance_preset
    from dmsec.extract.base import extract as run_extract
    from dmsec.images import png_bytes
    from dmsec.models.loading import load_pair

    try:
        pair = load_pair(checkpoint, base, device=device, dtype=getattr(torch, dtype))
        if prompt is not None and getattr(pair.pretrained, "text_encoder", None) is None:
            raise click.UsageError("--prompt needs a text-conditional model; this one is conditioned on a class")  # fmt: skip
        config, chosen = ExtractConfig(
            w=w, k=k, steps=steps, n_samples=n_samples, n_groups=n_groups, seed=seed,
            defaults=guidance_preset(guidance) if guidance else None, similarity=space,
            condition=prompt,
        ).fitted(pair.pretrained)  # fmt: skip
        if chosen:
            click.echo(f"settings from the model ({chosen['why']}): space {config.similarity}, "
                       f"guidance preset {guidance or chosen['defaults']}", err=True)  # fmt: skip
        result = run_extract(pair, config, method=method, progress=True)
    except DmsecError as exc:
        raise click.ClickException(str(exc)) from None
    out_dir = Path(out)
    (out_dir / "candidates").mkdir(parents=True, exist_ok=True)
    rows = []
    for rank, image in enumerate(result.images):
        name = f"candidates/rank{rank:03d}.png"
        data = png_bytes(image)
        (out_dir / name).write_bytes(data)
        rows.append({
            "rank": rank, "group_size": int(result.group_sizes[rank]), "score": float(result.scores[rank]),
            "seed": int(result.seeds[rank]), "sample_index": int(result.sample_indices[rank]),
            "image_path": name, "image_png": data,
        })  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), out_dir / "candidates.parquet")
    meta = {"checkpoint": checkpoint, "base": base, "method": method, "pair_kind": pair.kind,
            "threshold": result.threshold, "n_groups": result.n_groups, "config": result.config}  # fmt: skip
    (out_dir / "extraction.json").write_text(json.dumps(meta, indent=2, default=str))
    click.echo(
        f"{len(rows)} candidates from {n_samples} generations ({method}, {pair.kind} pair) -> {out_dir}"
    )
    for r in rows[:10]:
        click.echo(
            f"  rank {r['rank']:>2}  group {r['group_size']:>3}  score {r['score']:.3f}  {r['image_path']}"
        )
