"""Adapter variants recognised by their key names but not loaded (one table row each).

Each is a different weight parameterisation than LoRA's low-rank product, so loading it as LoRA
would be silently wrong: LyCORIS LoHa (`hada_*`), LoKr (`lokr_*`), LoCon with Tucker
decomposition (`lora_mid`), DoRA (`dora_scale`), OFT (`oft_blocks`, `oft_diag`), (IA)^3
(`on_input`), GLoRA (`a1/a2/b1/b2`) and LyCORIS full-difference weights (`.diff`). A file in one
of them is an error row naming the variant. Supporting one means replacing its row by a module
with a `load` (see `dmsec.models.formats`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dmsec.models.family import Family, family_of_adapter
from dmsec.models.formats.base import CheckpointFormat, Probe


class UnsupportedVariant(CheckpointFormat):
    """A row for one variant: it matches a file holding any of its key fragments or suffixes."""

    kind = "unsupported"

    def __init__(
        self, name: str, title: str, fragments: tuple[str, ...], suffixes: tuple[str, ...] = ()
    ) -> None:
        self.name, self.title = name, title
        self.fragments, self.suffixes = fragments, suffixes

    def hit(self, keys: Sequence[str]) -> str | None:
        """The first key that marks this variant, or None."""
        for key in keys:
            if any(f in key for f in self.fragments) or (self.suffixes and key.endswith(self.suffixes)):  # fmt: skip
                return key
        return None

    def matches(self, probe: Probe) -> bool:
        if probe.is_folder:
            return False
        earlier = VARIANTS[: VARIANTS.index(self)] if self in VARIANTS else ()
        keys = probe.tensor_names
        return self.hit(keys) is not None and not any(v.hit(keys) for v in earlier)

    def reason(self, probe: Probe) -> str:
        return f"{self.title} is not supported yet (e.g. {self.hit(probe.tensor_names)!r})"

    def family(self, header: Mapping[str, Any]) -> Family:
        return family_of_adapter(header)


VARIANTS: tuple[UnsupportedVariant, ...] = (
    UnsupportedVariant(
        "loha", "LyCORIS LoHa (Hadamard-product adapter, hada_* keys)", ("hada_w1_a",)
    ),  # fmt: skip
    UnsupportedVariant(
        "lokr", "LyCORIS LoKr (Kronecker-product adapter, lokr_* keys)", ("lokr_w1", "lokr_w2")
    ),  # fmt: skip
    UnsupportedVariant(
        "locon-tucker", "LyCORIS LoCon with Tucker decomposition (lora_mid keys)", (".lora_mid.",)
    ),  # fmt: skip
    UnsupportedVariant("dora", "DoRA (dora_scale keys)", ("dora_scale",)),
    UnsupportedVariant("oft", "OFT (oft_blocks / oft_diag keys)", ("oft_blocks", ".oft_diag")),
    UnsupportedVariant("ia3", "(IA)^3 (on_input keys)", (".on_input",)),
    UnsupportedVariant("glora", "LyCORIS GLoRA (a1/a2/b1/b2 keys)", (".a1.weight",)),
    UnsupportedVariant(
        "lycoris-full", "LyCORIS full-difference weights (.diff keys)", (), (".diff", ".diff_b")
    ),
)


def variant_of(keys: Sequence[str]) -> UnsupportedVariant | None:
    """The unsupported variant whose keys `keys` carry (the first in table order), or None."""
    return next((v for v in VARIANTS if v.hit(keys) is not None), None)
