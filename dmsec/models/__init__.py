"""Diffusion model handles, model pairs, LoRA adapters and safe loading of untrusted files.

Import from the submodules (`dmsec.models.loading`, `.pair`, `.lora`, ...): this package file stays
empty so that `dmsec.models.safe_load` can be imported without loading diffusers and peft.
"""
