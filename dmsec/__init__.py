"""dmsec: scan model hubs for fine-tuned diffusion checkpoints that leak protected artwork."""

__version__ = "0.1.0"
