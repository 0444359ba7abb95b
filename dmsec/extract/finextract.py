"""FineXtract end to end: generate with extrapolated guidance, cluster, rank the candidates.

`extract(pair, config)` returns ranked candidates (images, group sizes, scores, the seeds used);
`generate(pair, config, method)` gives the raw generations of FineXtract or of the baseline, from
the very same initial noise: sample i always starts from `initial_noise` of seed `config.seed + i`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from dmsec.errors import ConfigError
from dmsec.extract.clustering import cluster_samples, estimate_num_groups
from dmsec.extract.guidance import cfg_eps, finextract_eps
from dmsec.metrics import SPACES
from dmsec.models.base import Condition
from dmsec.models.pair import ModelPair, instance_condition
from dmsec.sampling import sample

# The paper's defaults (Stable Diffusion): (w, k) per fine-tune kind.
PAPER_DEFAULTS: dict[str, tuple[float, float]] = {"full": (3.0, -0.02), "lora": (5.0, 0.0)}
METHODS = ("finextract", "baseline")


@dataclass(frozen=True)
class ExtractConfig:
    """FineXtract's knobs; `w`/`k` None means the default for the pair's kind."""

    w: float | None = None
    k: float | None = None
    steps: int = 50
    eta: float = 0.0
    n_samples: int = 64
    batch_size: int | None = None  # None: chosen from free GPU memory, 64 on CPU
    seed: int = 0
    n_groups: int | None = None  # N0; None: estimated (see clustering.estimate_num_groups)
    top_k: int | None = None
    guidance_scale: float = 3.0  # the baseline's classifier-free guidance
    condition: Condition = None  # None: the model's instance class / prompt
    # the similarity space the generations are clustered in (`dmsec.metrics.SPACES`): "zoo"
    # (16x16 grey Pearson, the digit zoo) or "art" (16x16 RGB Pearson, the art zoo)
    similarity: str = "zoo"
    defaults: tuple[tuple[str, float, float], ...] = tuple(
        (kind, w, k) for kind, (w, k) in PAPER_DEFAULTS.items()
    )

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ConfigError(f"`n_samples` must be >= 1; got {self.n_samples}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"`batch_size` must be >= 1; got {self.batch_size}")
        if self.n_groups is not None and self.n_groups < 1:
            raise ConfigError(f"`n_groups` must be >= 1; got {self.n_groups}")
        if self.similarity not in SPACES:
            raise ConfigError(
                f"`similarity` must be one of {sorted(SPACES)}; got {self.similarity!r}"
            )

    def resolved(self, kind: str) -> ExtractConfig:
        """Fill `w` and `k` from the defaults for a pair of `kind` (full or lora)."""
        table = {kd: (w, k) for kd, w, k in self.defaults}
        if kind not in table:
            raise ConfigError(f"no default guidance for pair kind {kind!r}")
        w, k = table[kind]
        return replace(self, w=w if self.w is None else self.w, k=k if self.k is None else self.k)


@dataclass
class ExtractionResult:
    """Ranked candidates: candidate i is the representative of the i-th largest group."""

    images: torch.Tensor  # (K, C, H, W) in [0, 1]
    group_sizes: np.ndarray  # (K,)
    scores: np.ndarray  # (K,) share of all generations in the candidate's group
    sample_indices: np.ndarray  # (K,) which generation represents the group
    seeds: np.ndarray  # (K,) initial-noise seed of that generation
    threshold: float  # clustering threshold τ finally used
    n_groups: int  # N0 used
    samples: torch.Tensor  # (N, C, H, W) every generation
    config: dict[str, Any]


def _condition(pair: ModelPair, config: ExtractConfig) -> Condition:
    """The condition c: given in the config, else the fine-tune's own (`instance_condition`)."""
    return config.condition if config.condition is not None else instance_condition(pair)


def default_batch_size(pair: ModelPair) -> int:
    """64 on CPU; on CUDA, as many samples as fit in half the free memory (rough per-sample cost)."""
    if pair.device.type != "cuda":
        return 64
    free, _ = torch.cuda.mem_get_info(pair.device)
    per_sample = 4 * int(np.prod(pair.sample_shape)) * 400  # activations ≈ 400x the sample, fp32
    return int(max(1, min(512, free // 2 // max(per_sample, 1))))


def generate(
    pair: ModelPair, config: ExtractConfig, method: str = "finextract", progress: bool = False
) -> torch.Tensor:
    """All `n_samples` generations (images in [0, 1]) of `method` from seeds seed..seed+N−1."""
    if method not in METHODS:
        raise ConfigError(f"`method` must be one of {METHODS}; got {method!r}")
    config = config.resolved(pair.kind)
    assert config.w is not None and config.k is not None
    c = _condition(pair, config)
    batch = config.batch_size or default_batch_size(pair)
    handle = pair.finetuned_handle()
    clip = 1.0 if handle.family == "unet2d" else None
    out = []
    for start in tqdm(
        range(0, config.n_samples, batch), disable=not progress, desc=method, leave=False
    ):
        n = min(batch, config.n_samples - start)
        # 1. the initial noise of each sample from its own seed, identical for both methods
        x_T = seeded_noise(range(config.seed + start, config.seed + start + n), pair.sample_shape)
        x_T = x_T.to(pair.device, handle.dtype)
        # 2. the guided noise predictor, conditions encoded once per batch
        if method == "finextract":
            cond_pre, cond_ft = pair.encode_pre([None] * n), pair.encode_ft([c] * n)
            eps = finextract_eps(pair, cond_pre, cond_ft, config.w, config.k)
        else:
            cond_null = pair.encode_ft([None] * n) if c is not None else None
            eps = cfg_eps(pair, cond_null, pair.encode_ft([c] * n), config.guidance_scale)
        # 3. deterministic DDIM, then decode to images
        with torch.inference_mode():
            x0 = sample(
                eps,
                x_T,
                pair.alphas_cumprod,
                steps=config.steps,
                eta=config.eta,
                clip_x0=clip,
                seed=config.seed,
            )
            out.append(handle.decode(x0).float().cpu())
    return torch.cat(out)


def seeded_noise(seeds: range | list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """x_T per sample from its own seed (so any single candidate can be regenerated alone)."""
    return torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds]
    )


def cluster_generations(
    samples: torch.Tensor,
    config: ExtractConfig,
    embed: Any = None,
    tau_copy: float | None = None,
) -> ExtractionResult:
    """Cluster generations and keep one representative per group, largest group first.

    `embed` and `tau_copy` default to the config's similarity space and its copy threshold.
    """
    space = SPACES[config.similarity]
    emb = (embed or space.embed)(samples)
    n_groups = config.n_groups or estimate_num_groups(
        emb, space.threshold() if tau_copy is None else tau_copy
    )
    clustering = cluster_samples(emb, n_groups)
    keep = (
        len(clustering.groups)
        if config.top_k is None
        else min(config.top_k, len(clustering.groups))
    )
    reps = clustering.representatives[:keep]
    sizes = clustering.sizes[:keep]
    return ExtractionResult(
        images=samples[torch.from_numpy(reps)],
        group_sizes=sizes,
        scores=sizes / len(samples),
        sample_indices=reps,
        seeds=config.seed + reps,
        threshold=clustering.threshold,
        n_groups=n_groups,
        samples=samples,
        config=asdict(config),
    )


def extract(
    pair: ModelPair,
    config: ExtractConfig | None = None,
    method: str = "finextract",
    progress: bool = False,
) -> ExtractionResult:
    """Generate with `method` and return the ranked candidates."""
    config = (config or ExtractConfig()).resolved(pair.kind)
    return cluster_generations(generate(pair, config, method, progress), config)
