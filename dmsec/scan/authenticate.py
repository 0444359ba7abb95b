"""The authenticate stage: CGI-DM evidence for every matched artwork of a checkpoint.

For each artwork a checkpoint matched, CGI-DM (`dmsec.authenticate.authenticate`) asks the pair
(pretrained, fine-tuned) whether that protected image was in the fine-tuning set: it masks the
image, recovers the removed part by contrasting gradient inversion, and scores the recovery's
similarity to the original (higher = member); the loss-gap baseline comes along. All matches of
one artwork share its evidence; the recovered image is staged as `evidence_<artwork>.png`.
Matches whose artwork image is unavailable get `cgidm_status` "error" with the reason; a CGI-DM
failure marks every match and then the checkpoint as an error of this stage (its findings are
still written).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from dmsec.authenticate import CgiDmConfig, authenticate
from dmsec.authenticate.inputs import to_model_images
from dmsec.images import decode_untrusted_images, save_png
from dmsec.scan.config import AuthenticateSettings
from dmsec.scan.models import WarmModels
from dmsec.scan.records import ScanItem, describe
from dmsec.scan.stage import Stage, set_torch_threads


class AuthenticateStage(Stage):
    """CGI-DM per matched artwork, on warm base models; see the module docstring."""

    name: ClassVar[str] = "authenticate"

    def __init__(
        self,
        settings: dict[str, Any],
        device: str = "auto",
        max_warm_bases: int = 2,
        torch_threads: int | None = None,
    ) -> None:
        set_torch_threads(torch_threads)
        self.settings = AuthenticateSettings(**settings)
        self.config = CgiDmConfig(
            steps=self.settings.steps,
            seed=self.settings.seed,
            baseline_draws=self.settings.baseline_draws,
        )
        self.models = WarmModels(device, max_warm_bases)

    def order(self, items: list[ScanItem]) -> list[ScanItem]:
        return sorted(items, key=lambda it: (it.base_key or "", it.order))

    def process(self, item: ScanItem) -> None:
        if not item.matches:
            return
        if not self.settings.enabled:
            for m in item.matches:
                m.update(cgidm_status="disabled")
            return
        paths: dict[int, str] = {}
        for m in item.matches:
            if m.get("artwork_path"):
                paths[m["artwork_id"]] = m["artwork_path"]
            else:
                m.update(cgidm_status="error", cgidm_error="the protected image could not be read from its source_uri")  # fmt: skip
        if not paths:
            return
        try:
            evidence = self._evidence(item, paths)
        except Exception as exc:
            for m in item.matches:
                if m["artwork_id"] in paths:
                    m.update(cgidm_status="error", cgidm_error=describe(exc))
            raise
        for m in item.matches:
            if m["artwork_id"] in evidence:
                m.update(evidence[m["artwork_id"]])

    def _evidence(self, item: ScanItem, paths: dict[int, str]) -> dict[int, dict[str, Any]]:
        ids = sorted(paths)
        decoded, errors = decode_untrusted_images([paths[i] for i in ids])
        if errors:
            raise ValueError(f"staged artwork image unreadable: {errors[0].reason}")
        pair = self.models.pair(item)
        images = to_model_images(pair.pretrained, [d.pixels for d in decoded])
        results = authenticate(pair, images.to(pair.device), self.config)
        folder = Path(item.staging_dir or ".")
        out: dict[int, dict[str, Any]] = {}
        for artwork_id, ev in zip(ids, results, strict=True):
            target = save_png(ev.recovered_image, folder / f"evidence_{artwork_id}.png")
            out[artwork_id] = {
                "cgidm_status": "ok",
                "cgidm_score": ev.score,
                "cgidm_masked_score": ev.masked_score,
                "cgidm_baseline_gap": ev.baseline_gap,
                "cgidm_steps": self.settings.steps,
                "evidence_path": str(target),
            }
        return out
