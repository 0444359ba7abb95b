"""Handle for text-conditional latent diffusion (Stable Diffusion 1.x/2.x layout).

Components: `UNet2DConditionModel` (the noise predictor), a CLIP text encoder and its tokenizer
(prompts -> encoder hidden states; ∅ is the empty prompt), and an `AutoencoderKL` (images <->
latents scaled by `vae.config.scaling_factor`). Diffusion runs on latents, so x̂_0 is not clipped.

Real checkpoints load from a local diffusers folder; tests use `tiny_stable_diffusion()`, a
random-init model of the same architecture built in code (no download). The tokenizer is built
by `load_tokenizer` as a class we name (CLIP's, or a plain fast tokenizer) from the files we
accept, never by `AutoTokenizer` choosing a class from the folder's untrusted config.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerBase

from dmsec.errors import CheckpointError, ConfigError
from dmsec.models.base import Condition, DiffusionModel
from dmsec.models.schedule import alphas_cumprod, save_scheduler
from dmsec.models.unet2d import MODEL_CARD, ModelInfo
from dmsec.models.weights import component_weights, load_weights_into, read_json, read_model_info

SD_SCHEDULE = {
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "clip_sample": False,
}


class StableDiffusionHandle(DiffusionModel):
    """UNet2DConditionModel + text encoder + VAE; conditions are prompts (None = "")."""

    family = "stable-diffusion"

    def __init__(
        self,
        unet: Any,
        text_encoder: Any,
        tokenizer: PreTrainedTokenizerBase,
        vae: Any,
        schedule: dict[str, Any] | None = None,
        info: ModelInfo | None = None,
    ) -> None:
        self.network = unet
        self.text_encoder: Any = text_encoder
        self.tokenizer = tokenizer
        self.vae: Any = vae
        self.schedule = dict(schedule if schedule is not None else SD_SCHEDULE)
        self.alphas_cumprod = alphas_cumprod(self.schedule).to(next(unet.parameters()).device)
        self.info = info or ModelInfo()
        self.scaling_factor = float(getattr(vae.config, "scaling_factor", 0.18215))

    def modules(self) -> list[Any]:
        return [self.network, self.text_encoder, self.vae]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        size = self.network.config.sample_size
        return (self.network.config.in_channels, size, size)

    def _token_ids(self, conditions: Sequence[Condition]) -> torch.Tensor:
        prompts = []
        for c in conditions:
            if c is not None and not isinstance(c, str):
                raise ConfigError(
                    f"Stable Diffusion conditions must be prompts (str) or None; got {c!r}"
                )
            prompts.append(c or "")
        return self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)

    def encode_condition(self, conditions: Sequence[Condition]) -> torch.Tensor:
        ids = self._token_ids(conditions)
        with torch.no_grad():
            return self.text_encoder(ids)[0].to(self.dtype)

    def encode_condition_trainable(self, conditions: Sequence[Condition]) -> torch.Tensor:
        return self.text_encoder(self._token_ids(conditions))[0].to(self.dtype)

    def concat_conditions(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, b])

    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        t = t.expand(x_t.shape[0]) if t.ndim == 0 else t
        return self.network(x_t, t, encoder_hidden_states=cond).sample

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, self.vae.dtype) * 2 - 1
        return self.vae.encode(x).latent_dist.mean * self.scaling_factor

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        images = self.vae.decode(x0.to(self.vae.dtype) / self.scaling_factor).sample
        return ((images.float() + 1) / 2).clamp(0, 1)

    def save(self, folder: str | Path) -> Path:
        """Write the diffusers folder layout (unet/, text_encoder/, tokenizer/, vae/, scheduler/)."""
        folder = Path(folder)
        self.network.save_pretrained(str(folder / "unet"), safe_serialization=True)
        self.vae.save_pretrained(str(folder / "vae"), safe_serialization=True)
        self.text_encoder.save_pretrained(str(folder / "text_encoder"), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder / "tokenizer"))
        save_scheduler(folder, self.schedule)
        index = {
            "_class_name": "StableDiffusionPipeline",
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "scheduler": ["diffusers", "DDPMScheduler"],
        }
        (folder / "model_index.json").write_text(json.dumps(index, indent=2))
        (folder / MODEL_CARD).write_text(self.info.to_json())
        return folder


def load_stable_diffusion_folder(folder: Path, allow_pickle: bool = False) -> StableDiffusionHandle:
    """Load a local diffusers Stable Diffusion folder, every weight file through safe_load."""
    from dmsec.models.schedule import load_scheduler_config

    def build(component: str, cls: Any) -> Any:
        config = read_json(folder / component / "config.json")
        try:
            if cls is CLIPTextModel:
                module = CLIPTextModel(CLIPTextConfig.from_dict(config))
            else:
                module = cls.from_config(config)
        except Exception as exc:
            raise CheckpointError(
                folder / component / "config.json", f"invalid config: {exc}"
            ) from None
        state = component_weights(folder / component, allow_pickle)
        state.pop("text_model.embeddings.position_ids", None)  # a buffer older exports still carry
        load_weights_into(module, state, folder / component)
        return module.eval()

    unet = build("unet", UNet2DConditionModel)
    vae = build("vae", AutoencoderKL)
    text_encoder = build("text_encoder", CLIPTextModel)
    tokenizer = load_tokenizer(folder / "tokenizer")
    schedule = load_scheduler_config(folder)
    return StableDiffusionHandle(
        unet, text_encoder, tokenizer, vae, schedule, read_model_info(folder)
    )


CLIP_CLASSES = ("CLIPTokenizer", "CLIPTokenizerFast")
FAST_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")  # a plain `tokenizer.json`
SPECIAL_TOKENS = ("bos_token", "eos_token", "pad_token", "unk_token")
MAX_TOKENIZER_BYTES = 64 << 20


def _tokenizer_options(folder: Path) -> tuple[str, dict[str, Any]]:
    """The class named by `tokenizer_config.json` (CLIP's when absent) and the few settings we
    take from it: `model_max_length` (an int) and the special tokens (strings)."""
    path = folder / "tokenizer_config.json"
    if path.exists() and path.stat().st_size > MAX_TOKENIZER_BYTES:
        raise CheckpointError(path, f"over the {MAX_TOKENIZER_BYTES:,}-byte cap")
    config = read_json(path) if path.exists() else {}
    cls = config.get("tokenizer_class") or "CLIPTokenizer"
    if cls not in CLIP_CLASSES + FAST_CLASSES:
        raise CheckpointError(path, f"`tokenizer_class` {cls!r} is not a CLIP or plain fast tokenizer")  # fmt: skip
    options: dict[str, Any] = {}
    length = config.get("model_max_length")
    if isinstance(length, int) and 0 < length <= 1 << 16:
        options["model_max_length"] = length
    for key in SPECIAL_TOKENS:
        value = config.get(key)
        value = value.get("content") if isinstance(value, dict) else value
        if isinstance(value, str):
            options[key] = value
    return str(cls), options


def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """A tokenizer folder -> `CLIPTokenizer` (from `tokenizer.json`, or CLIP's `vocab.json` +
    `merges.txt`) or, for a plain `tokenizer.json` saved by a fast tokenizer, a
    `PreTrainedTokenizerFast`; files over 64 MiB and other classes are refused."""
    from transformers import CLIPTokenizer, PreTrainedTokenizerFast

    cls, options = _tokenizer_options(folder)
    files = {n: folder / n for n in ("tokenizer.json", "vocab.json", "merges.txt")}
    for path in files.values():
        if path.exists() and path.stat().st_size > MAX_TOKENIZER_BYTES:
            raise CheckpointError(path, f"over the {MAX_TOKENIZER_BYTES:,}-byte cap")
    try:
        if files["tokenizer.json"].exists():
            source = {"tokenizer_file": str(files["tokenizer.json"])}
            if cls in CLIP_CLASSES:
                return CLIPTokenizer(**source, **options)
            return PreTrainedTokenizerFast(**source, **options)
        if cls in CLIP_CLASSES and files["vocab.json"].exists() and files["merges.txt"].exists():
            return CLIPTokenizer(vocab=str(files["vocab.json"]), merges=str(files["merges.txt"]), **options)  # fmt: skip
    except Exception as exc:
        raise CheckpointError(folder, f"cannot load tokenizer: {exc}") from None
    raise CheckpointError(folder, "no tokenizer.json (or vocab.json + merges.txt for CLIP)")


def tiny_tokenizer(
    words: Sequence[str] = ("a", "photo", "of", "sks", "dog", "painting", "style"),
) -> PreTrainedTokenizerBase:
    """A word-level tokenizer built in code (stands in for CLIP's BPE in tests)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<|endoftext|>": 0, "<|startoftext|>": 1, "<unk>": 2} | {
        w: i + 3 for i, w in enumerate(words)
    }
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<|endoftext|>", unk_token="<unk>", model_max_length=8
    )


def tiny_stable_diffusion(seed: int = 0, image_size: int = 32) -> StableDiffusionHandle:
    """A random-init Stable-Diffusion-architecture model small enough for CPU tests."""
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=8, pad_token_id=0, bos_token_id=1, eos_token_id=0,
        )
    ).eval()  # fmt: skip
    vae: Any = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=8, sample_size=image_size,
    )  # fmt: skip
    unet: Any = UNet2DConditionModel(
        sample_size=image_size // 2, in_channels=4, out_channels=4, block_out_channels=(16, 32),
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=4, norm_num_groups=8,
    )  # fmt: skip
    handle = StableDiffusionHandle(
        unet, text_encoder, tokenizer, vae, info=ModelInfo(instance_prompt="a photo of sks dog")
    )
    handle.eval()
    return handle
