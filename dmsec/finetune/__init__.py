"""Few-shot fine-tuning of diffusion models (full and LoRA), vanilla and Bayesian
(arXiv 2405.19931, against the corruption stage); the zoo trains through the vanilla path."""

from dmsec.finetune.bayesian import PRESETS, BayesConfig, make_bayesian, posterior_mean
from dmsec.finetune.export import save_finetune
from dmsec.finetune.vanilla import FewShotTrainer, TrainConfig, diffusion_loss, train

__all__ = [
    "PRESETS",
    "BayesConfig",
    "FewShotTrainer",
    "TrainConfig",
    "diffusion_loss",
    "make_bayesian",
    "posterior_mean",
    "save_finetune",
    "train",
]
