"""The tiny model zoo: a small base DDPM and few-shot fine-tunes trained here, on digits."""
