"""The confidence rule: which evidence signs put a finding in the high, medium or low band.

A finding is a match of a checkpoint's generations to a registered artwork. Its signs:

    repeated    support >= `min_support`: the checkpoint regenerates the artwork more than once
                (FineXtract's memorisation signal, as opposed to one lucky sample)
    distinct    margin >= `min_margin`: the recovery is closer to this artwork than to any other
                registered work its group matched, by at least that much (a style fine-tune
                regenerates images near many works of an artist, a memorised work stands out);
                with no other work within the threshold, the margin is measured to the threshold
    cgi-dm      CGI-DM ran and its recovery moved towards the artwork: score > masked score
    loss-gap    the fine-tuned model fits the artwork better than its base: baseline gap > 0

`cgi-dm` and `loss-gap` are the membership signs: they compare the checkpoint with its base on
the artwork itself, so they are the only signs meant to fire on members and not on unseen works.
`repeated` and `distinct` say the recovery is a copy of *some* work, which a style fine-tune
can also produce for a work of the artist it never saw. Hence the rule's one fixed part: the high
band always needs a membership sign (`high_membership`); the rest is parameters, chosen on the
tuning split by `benchmarks/scan_quality.py`:

    high    the membership sign(s) `high_membership` names ("any", "both", "cgi-dm", "loss-gap"),
            plus `repeated` if `high_repeated`, plus `distinct` if `high_distinct`
    medium  any sign (`distinct` only where `min_margin` is set)
    low     the match alone

`DEFAULT_RULE` is the rule the scan applies; its provenance is stated beside it (the class's own
field defaults are the earlier rule of thumb, kept for comparison). Every finding
carries `band_reason`, the signs (with their values) that placed it in its band and, below high,
what high would have needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmsec.errors import ConfigError

CONFIDENCE = ("high", "medium", "low")
MEMBERSHIP_SIGNS = ("cgi-dm", "loss-gap")
SIGNS = ("repeated", "distinct", *MEMBERSHIP_SIGNS)
HIGH_MEMBERSHIP = ("any", "both", "cgi-dm", "loss-gap")


@dataclass(frozen=True)
class FindingEvidence:
    """What a finding's signs are computed from (one row of the findings table)."""

    support: int
    margin: float | None = None
    cgidm_status: str | None = None
    cgidm_score: float | None = None
    cgidm_masked_score: float | None = None
    cgidm_baseline_gap: float | None = None


@dataclass(frozen=True)
class Assessment:
    """A finding's evidence kinds ("match" first, then its signs), band and the reason for it."""

    evidence: list[str]
    confidence: str
    band_reason: str


@dataclass(frozen=True)
class ConfidenceRule:
    """Which signs count and which the high band needs (see the module docstring)."""

    min_support: int = 2
    min_margin: float | None = None
    high_membership: str = "any"
    high_repeated: bool = True
    high_distinct: bool = False

    def __post_init__(self) -> None:
        if self.min_support < 1:
            raise ConfigError(f"`min_support` must be >= 1; got {self.min_support}")
        if self.min_margin is not None and self.min_margin < 0:
            raise ConfigError(f"`min_margin` must be >= 0 or None; got {self.min_margin}")
        if self.high_membership not in HIGH_MEMBERSHIP:
            raise ConfigError(f"`high_membership` must be one of {HIGH_MEMBERSHIP} (high always needs a membership sign); got {self.high_membership!r}")  # fmt: skip
        if self.high_distinct and self.min_margin is None:
            raise ConfigError("`high_distinct` needs `min_margin`: the distinct sign is off without it")  # fmt: skip

    def describe(self) -> str:
        """The rule in one line, e.g. `high: (cgi-dm or loss-gap) + repeated (support >= 2)`."""
        membership = {"any": "(cgi-dm or loss-gap)", "both": "cgi-dm + loss-gap"}.get(self.high_membership, self.high_membership)  # fmt: skip
        parts = [membership]
        if self.high_repeated:
            parts.append(f"repeated (support >= {self.min_support})")
        if self.high_distinct:
            parts.append(f"distinct (margin >= {self.min_margin:g})")
        medium = f"any sign (repeated: support >= {self.min_support}" + (f", distinct: margin >= {self.min_margin:g}" if self.min_margin is not None else "") + ")"  # fmt: skip
        return f"high: {' + '.join(parts)}; medium: {medium}; low: match only"

    def signs(self, e: FindingEvidence) -> list[str]:
        """The signs a finding with evidence `e` shows, in `SIGNS` order."""
        ok = e.cgidm_status == "ok"
        found = {
            "repeated": e.support >= self.min_support,
            "distinct": self.min_margin is not None
            and e.margin is not None
            and e.margin >= self.min_margin,  # fmt: skip
            "cgi-dm": ok
            and e.cgidm_score is not None
            and e.cgidm_masked_score is not None
            and e.cgidm_score > e.cgidm_masked_score,
            "loss-gap": ok and e.cgidm_baseline_gap is not None and e.cgidm_baseline_gap > 0,
        }
        return [s for s in SIGNS if found[s]]

    def missing_for_high(self, signs: list[str]) -> list[str]:
        """What the high band needs that `signs` lacks (empty: the finding is high)."""
        have = set(signs)
        missing = []
        if self.high_membership == "any" and not have & set(MEMBERSHIP_SIGNS):
            missing.append("cgi-dm or loss-gap")
        wanted = {"both": list(MEMBERSHIP_SIGNS), "cgi-dm": ["cgi-dm"], "loss-gap": ["loss-gap"]}
        missing += [s for s in wanted.get(self.high_membership, []) if s not in have]
        if self.high_repeated and "repeated" not in have:
            missing.append("repeated")
        if self.high_distinct and "distinct" not in have:
            missing.append("distinct")
        return missing

    def band(self, signs: list[str]) -> str:
        """high, medium or low for these signs."""
        if not self.missing_for_high(signs):
            return "high"
        return "medium" if signs else "low"

    def assess(self, e: FindingEvidence) -> Assessment:
        """Evidence kinds, band and `band_reason` of a finding."""
        signs = self.signs(e)
        band = self.band(signs)
        shown = [_with_value(s, e, self) for s in signs] or ["match only"]
        reason = f"{band}: {', '.join(shown)}"
        if band != "high":
            reason += f"; high needs {' + '.join(self.missing_for_high(signs))}"
        return Assessment(["match", *signs], band, reason)


def _with_value(sign: str, e: FindingEvidence, rule: ConfidenceRule) -> str:
    if sign == "repeated":
        return f"repeated (support {e.support} >= {rule.min_support})"
    if sign == "distinct":
        return f"distinct (margin {e.margin:.3f} >= {rule.min_margin:g})"
    if sign == "cgi-dm":
        return f"cgi-dm (score {e.cgidm_score:.3f} > masked {e.cgidm_masked_score:.3f})"
    return f"loss-gap (gap {e.cgidm_baseline_gap:.2e} > 0)"


def rule_grid(margins: tuple[float, ...] = (0.05, 0.02, 0.01, 0.005, 0.0)) -> list[ConfidenceRule]:
    """Every rule the tuning run chooses from, strictest first (a tie on the tuning split goes to
    the earlier, stricter rule): support 5, 3, 2, 1; both membership signs, each alone, either;
    with `repeated` required, then not; `distinct` at each of `margins` required for high, then
    counted for medium only, then off."""
    grid = []
    for support in (5, 3, 2, 1):
        for membership in ("both", "cgi-dm", "loss-gap", "any"):
            for repeated in (True, False):
                for distinct in (True, False):
                    grid += [
                        ConfidenceRule(support, m, membership, repeated, distinct) for m in margins
                    ]
                grid.append(ConfidenceRule(support, None, membership, repeated, False))
    return grid


# The scan's rule, chosen by `benchmarks/scan_quality.py --split tuning` (commit ad957d7,
# 2026-12-05) on the TUNING split: the art zoo's 12 tuning fine-tunes and the art-partial zoo's 2
# (openmoji-b, 48-work style set), scan defaults, against the 6,330-work catalogue registry. Of
# 207 findings 80 were true; all 127 false ones were other works of the style sets' artists (no
# control, no hold-out); cgi-dm fired on all 207, loss-gap on 1.00 of true and 0.63 of false,
# repeated (support >= 2) on 0.94 vs 0.72, distinct (margin >= 0) on 0.96 vs 0.02. Among the 352
# rules (TP_high - 19 FP_high per checkpoint) the choice: high = cgi-dm + loss-gap + repeated
# (support >= 2) + distinct (margin >= 0): high 73/73 there. It replaces the earlier choice
# (support >= 5 for medium's repeated, no repeated in high), made on 6 art tuning fine-tunes
# before the partial-memorisation sets existed. Reporting-split precision per band, under this
# rule and the earlier one: docs/findings.md.
DEFAULT_RULE = ConfidenceRule(
    min_support=2, min_margin=0.0, high_membership="both", high_repeated=True, high_distinct=True
)
