"""Few-shot fine-tuning of diffusion models (full and LoRA); the zoo trains through it."""
