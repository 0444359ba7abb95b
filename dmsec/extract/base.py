"""The extraction interface: config, result, `Extractor`, the registry, the shared steps.

An `Extractor` generates from a (pretrained, fine-tuned) pair and clusters the generations into
ranked candidates. Extractors are found by name in `EXTRACTORS`, a lazy "module:Class" table:
"finextract" (`dmsec.extract.finextract.FineXtract`) and "baseline", the direct-sampling baseline
(`dmsec.extract.direct.DirectSampling`). Every extractor starts generation i from the initial
noise of seed `generation_seed(config.seed, i)`, the one place that rule lives, so the methods
see the very same noise and any single generation can be regenerated alone.

Guidance presets (`GUIDANCE_PRESETS`, (w, k) per fine-tune kind) are found by name too: "paper"
is defined here; the zoos register theirs ("zoo", "art") from `dmsec.zoo.presets`, which the
table names and imports on first use. Similarity spaces come from `dmsec.metrics.SPACES`.

`extract(pair, config, method)` returns ranked candidates (images, group sizes, scores, the seeds
used, every group's members); `generate(pair, config, method)` gives the raw generations. The
algorithm and its defaults: docs/methods/finextract.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from dmsec.errors import ConfigError
from dmsec.extract.clustering import cluster_samples, estimate_num_groups
from dmsec.metrics import SPACES
from dmsec.models.base import Condition
from dmsec.models.pair import ModelPair, instance_condition
from dmsec.plugins import LazyTable, Registry
from dmsec.sampling import EpsFn, sample

# The paper's defaults (Stable Diffusion): (w, k) per fine-tune kind.
PAPER_DEFAULTS: dict[str, tuple[float, float]] = {"full": (3.0, -0.02), "lora": (5.0, 0.0)}


@dataclass(frozen=True)
class GuidancePreset:
    """FineXtract's (w, k) per fine-tune kind, and the data it was chosen on."""

    name: str
    table: Mapping[str, tuple[float, float]]
    chosen_on: str


GUIDANCE_PRESETS: LazyTable[GuidancePreset] = LazyTable(
    "guidance preset", {"zoo": "dmsec.zoo.presets", "art": "dmsec.zoo.presets"}
)
GUIDANCE_PRESETS.register(
    "paper", GuidancePreset("paper", PAPER_DEFAULTS, "the FineXtract paper (Stable Diffusion)")
)


def guidance_preset(name: str) -> tuple[tuple[str, float, float], ...]:
    """(kind, w, k) per fine-tune kind of a named preset (`GUIDANCE_PRESETS`): "paper"
    (`PAPER_DEFAULTS`, Stable Diffusion), "zoo" (tuned on the 16x16 digit zoo) or "art" (chosen on
    the art zoo's tuning split), or one a plug-in registered."""
    if name not in GUIDANCE_PRESETS:
        raise ConfigError(f"`defaults` must be a list of [kind, w, k] or a preset ({', '.join(GUIDANCE_PRESETS)}); got {name!r}")  # fmt: skip
    table = GUIDANCE_PRESETS[name].table
    return tuple((kind, float(w), float(k)) for kind, (w, k) in sorted(table.items()))


def image_settings(model: Any) -> tuple[str, str, str]:
    """(similarity space, guidance preset, why) that fit the images `model` makes, told from the
    model itself, never from where it came from: grey images (one channel, no VAE) are the digit
    zoo's kind ("zoo" space and preset); colour images get the "art" space, with the art zoo's
    preset when they are as small as its (<= 64 px, where that preset was chosen on its tuning
    split) and the paper's otherwise (Stable Diffusion sizes)."""
    vae = getattr(model, "vae", None)
    side = int(model.sample_shape[-1])
    if vae is None:
        channels = int(model.sample_shape[0])
    else:
        channels = int(vae.config.out_channels)
        side *= 2 ** (len(vae.config.block_out_channels) - 1)
    if channels == 1:
        return "zoo", "zoo", f"grey {side}x{side} images"
    preset = "art" if side <= 64 else "paper"
    return "art", preset, f"colour {side}x{side} images"


@dataclass(frozen=True)
class ExtractConfig:
    """FineXtract's knobs; `w`/`k` None means the default for the pair's kind (`defaults`, which
    a config file may also name as a `guidance_preset`). `similarity` or `defaults` None means
    "what fits the images the model makes" (`image_settings`), filled in by `fitted`."""

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
    # (16x16 grey Pearson, the digit zoo), "art" (16x16 RGB Pearson, the art zoo), or None
    similarity: str | None = "zoo"
    defaults: tuple[tuple[str, float, float], ...] | None = field(
        default=tuple((kind, w, k) for kind, (w, k) in PAPER_DEFAULTS.items()),
        metadata={"presets": guidance_preset},
    )

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ConfigError(f"`n_samples` must be >= 1; got {self.n_samples}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"`batch_size` must be >= 1; got {self.batch_size}")
        if self.n_groups is not None and self.n_groups < 1:
            raise ConfigError(f"`n_groups` must be >= 1; got {self.n_groups}")
        if self.similarity is not None and self.similarity not in SPACES:
            raise ConfigError(
                f"`similarity` must be one of {sorted(SPACES)} or null; got {self.similarity!r}"
            )

    def fitted(self, model: Any) -> tuple[ExtractConfig, dict[str, str]]:
        """This config with a None `similarity` / `defaults` taken from the images `model` makes
        (`image_settings`), and what was chosen so, with why ({} when nothing was None)."""
        if self.similarity is not None and self.defaults is not None:
            return self, {}
        space, preset, why = image_settings(model)
        chosen = {"similarity": space} if self.similarity is None else {}
        if self.defaults is None:
            chosen["defaults"] = preset
        config = replace(
            self,
            similarity=self.similarity or space,
            defaults=guidance_preset(preset) if self.defaults is None else self.defaults,
        )
        return config, {**chosen, "why": why}

    def resolved(self, kind: str) -> ExtractConfig:
        """Fill `w` and `k` from the defaults for a pair of `kind` (full or lora)."""
        if self.defaults is None:
            raise ConfigError("`defaults` is null (from the model): fit the config to the model first (`fitted`)")  # fmt: skip
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
    members: list[np.ndarray]  # (K,) sorted generation indices of each group
    threshold: float  # clustering threshold τ finally used
    n_groups: int  # N0 used
    samples: torch.Tensor  # (N, C, H, W) every generation
    config: dict[str, Any]


def generation_seed(seed: int, index: Any) -> Any:
    """The initial-noise seed of generation `index` (an int or an index array) of a run seeded
    `seed`: seed + index, for every extractor."""
    return seed + index


def seeded_noise(seeds: Iterable[int], shape: tuple[int, ...]) -> torch.Tensor:
    """x_T per sample from its own seed (so any single candidate can be regenerated alone)."""
    return torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    )


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


class Extractor(ABC):
    """Recovers likely training images of a pair: seeded generations, then clustering."""

    #: unique short name: the `method` configs and the CLI select it by
    name: ClassVar[str]

    def __init__(self, config: ExtractConfig | None = None) -> None:
        self.config = config or ExtractConfig()

    @abstractmethod
    def guided_noise(self, pair: ModelPair, config: ExtractConfig, condition: Condition, n: int) -> EpsFn:  # fmt: skip
        """The noise predictor that steers a batch of `n` generations (conditions encoded once)."""

    def config_for(self, pair: ModelPair) -> ExtractConfig:
        """The config as run on `pair`: fitted to its model, `w` and `k` filled for its kind."""
        return self.config.fitted(pair.pretrained)[0].resolved(pair.kind)

    def generate(self, pair: ModelPair, progress: bool = False) -> torch.Tensor:
        """All `n_samples` generations (images in [0, 1]), generation i from `generation_seed`."""
        config = self.config_for(pair)
        c = _condition(pair, config)
        batch = config.batch_size or default_batch_size(pair)
        handle = pair.finetuned_handle()
        clip = 1.0 if handle.family == "unet2d" else None
        out = []
        for start in tqdm(range(0, config.n_samples, batch), disable=not progress, desc=self.name, leave=False):  # fmt: skip
            n = min(batch, config.n_samples - start)
            # 1. the initial noise of each sample from its own seed, identical for every method
            seeds = [generation_seed(config.seed, i) for i in range(start, start + n)]
            x_T = seeded_noise(seeds, pair.sample_shape).to(pair.device, handle.dtype)
            # 2. the method's noise predictor, conditions encoded once per batch
            eps = self.guided_noise(pair, config, c, n)
            # 3. deterministic DDIM, then decode to images
            with torch.inference_mode():
                x0 = sample(eps, x_T, pair.alphas_cumprod, steps=config.steps, eta=config.eta,
                            clip_x0=clip, seed=config.seed)  # fmt: skip
                out.append(handle.decode(x0).float().cpu())
        return torch.cat(out)

    def extract(self, pair: ModelPair, progress: bool = False) -> ExtractionResult:
        """Generate, then return the ranked candidates."""
        config = self.config_for(pair)
        return cluster_generations(self.generate(pair, progress), config)


EXTRACTORS: Registry[Extractor] = Registry(
    "extractor",
    {"finextract": "dmsec.extract.finextract:FineXtract", "baseline": "dmsec.extract.direct:DirectSampling"},
)  # fmt: skip


def generate(
    pair: ModelPair, config: ExtractConfig, method: str = "finextract", progress: bool = False
) -> torch.Tensor:
    """All `n_samples` generations of extractor `method` from seeds seed..seed+N−1."""
    return EXTRACTORS.get(method)(config).generate(pair, progress)


def cluster_generations(
    samples: torch.Tensor,
    config: ExtractConfig,
    embed: Any = None,
    tau_copy: float | None = None,
) -> ExtractionResult:
    """Cluster generations and keep one representative per group, largest group first.

    `embed` and `tau_copy` default to the config's similarity space and its copy threshold.
    """
    if config.similarity is None:
        raise ConfigError("`similarity` is null (from the model): fit the config to the model first (`fitted`)")  # fmt: skip
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
        seeds=generation_seed(config.seed, reps),
        members=[np.sort(g) for g in clustering.groups[:keep]],
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
    """Generate with extractor `method` and return the ranked candidates."""
    return EXTRACTORS.get(method)(config).extract(pair, progress)
