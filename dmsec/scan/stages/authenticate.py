"""The authenticate stage: verifier evidence for every matched artwork of a checkpoint.

For each artwork a checkpoint matched, the verifier the config names (`dmsec.authenticate.
VERIFIERS`; default CGI-DM) asks the pair (pretrained, fine-tuned) whether that protected image
was in the fine-tuning set. CGI-DM masks the image, recovers the removed part by contrasting
gradient inversion, and scores the recovery's similarity to the original (higher = member); the
loss-gap baseline comes along (the "loss-gap" verifier gives that alone). All matches of one
artwork share its evidence; a recovered image is staged as `evidence_<artwork>.png`. Matches whose
artwork image is unavailable get `cgidm_status` "error" with the reason; a verifier failure marks
every match and then the checkpoint as an error of this stage (its findings are still written).
With no verifier, matches are marked "disabled".
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from dmsec.authenticate import VERIFIERS, CgiDmConfig
from dmsec.authenticate.evidence import Evidence
from dmsec.authenticate.inputs import to_model_images
from dmsec.images import decode_untrusted_images, save_png
from dmsec.scan.records import ScanItem, describe
from dmsec.scan.stages.base import Stage, set_torch_threads
from dmsec.scan.stages.warm import WarmModels


class AuthenticateStage(Stage):
    """Verifier evidence per matched artwork, on warm base models; see the module docstring."""

    name: ClassVar[str] = "authenticate"

    def __init__(
        self,
        config: CgiDmConfig,
        verifier: str | None = "cgi-dm",
        device: str = "auto",
        max_warm_bases: int = 2,
        torch_threads: int | None = None,
    ) -> None:
        set_torch_threads(torch_threads)
        self.config = config
        self.verifier = VERIFIERS.get(verifier)(config) if verifier is not None else None
        self.models = WarmModels(device, max_warm_bases)

    def order(self, items: list[ScanItem]) -> list[ScanItem]:
        return sorted(items, key=lambda it: (it.base_key or "", it.order))

    def process(self, item: ScanItem) -> None:
        if not item.matches:
            return
        if self.verifier is None:
            for m in item.matches:
                m.cgidm_status = "disabled"
            return
        paths: dict[int, str] = {}
        for m in item.matches:
            if m.artwork_path:
                paths[m.artwork_id] = m.artwork_path
            else:
                m.cgidm_status, m.cgidm_error = "error", "the protected image could not be read from its source_uri"  # fmt: skip
        if not paths:
            return
        try:
            evidence = self._evidence(item, paths)
        except Exception as exc:
            for m in item.matches:
                if m.artwork_id in paths:
                    m.cgidm_status, m.cgidm_error = "error", describe(exc)
            raise
        for m in item.matches:
            if m.artwork_id in evidence:
                ev, evidence_path = evidence[m.artwork_id]
                m.cgidm_status, m.evidence_path = "ok", evidence_path
                m.cgidm_score, m.cgidm_masked_score, m.cgidm_baseline_gap = ev.score, ev.masked_score, ev.baseline_gap  # fmt: skip
                m.cgidm_steps = self.config.steps if ev.score is not None else None

    def _evidence(self, item: ScanItem, paths: dict[int, str]) -> dict[int, tuple[Evidence, str | None]]:  # fmt: skip
        """artwork id -> (its evidence, the staged recovered image or None)."""
        assert self.verifier is not None
        ids = sorted(paths)
        decoded, errors = decode_untrusted_images([paths[i] for i in ids])
        if errors:
            raise ValueError(f"staged artwork image unreadable: {errors[0].reason}")
        pair = self.models.pair(item)
        images = to_model_images(pair.pretrained, [d.pixels for d in decoded])
        results = self.verifier.verify(pair, images.to(pair.device))
        folder = Path(item.staging_dir or ".")
        out: dict[int, tuple[Evidence, str | None]] = {}
        for artwork_id, ev in zip(ids, results, strict=True):
            path = None
            if ev.recovered_image is not None:
                path = str(save_png(ev.recovered_image, folder / f"evidence_{artwork_id}.png"))
            out[artwork_id] = (ev, path)
        return out
