"""The stage protocol: a callable class built once per worker, called on batches of items.

    stage = ExtractStage(**kwargs)            # loads what it needs (models, the registry) once;
                                              # kwargs: the library's own configs, from ResolvedScan
    batch = stage({"item": [json, ...]})      # Ray Data's map_batches, a unit test or a loop

`process(item)` does one checkpoint's work; any exception it raises ends that item as an error of
this stage (retryable or not, see `records.is_retryable`) and never reaches the caller, so one bad
checkpoint cannot stop a batch; a `NotDiffusionWeightsError` (the weights turned out to be no
diffusion model) ends it as skipped instead. Items that are no longer pending pass through
untouched.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from dmsec.models.formats import NotDiffusionWeightsError
from dmsec.scan.records import (
    ScanItem,
    batch_from_items,
    describe,
    is_retryable,
    items_from_batch,
)

logger = logging.getLogger(__name__)


class Stage(ABC):
    """One step of the scan over `ScanItem`s; see the module docstring."""

    name: ClassVar[str]

    def __call__(self, batch: Mapping[str, Sequence[Any]]) -> dict[str, list[str]]:
        """Process a batch with an `item` column of JSON `ScanItem`s; same shape out."""
        return batch_from_items(self.run(items_from_batch(batch)))

    def run(self, items: list[ScanItem]) -> list[ScanItem]:
        """Process items in place (in `order`), returning them in their original order."""
        for item in self.order(items):
            self.run_one(item)
        return items

    def order(self, items: list[ScanItem]) -> list[ScanItem]:
        """The order to work in; stages with warm models group items by base model."""
        return items

    def run_one(self, item: ScanItem) -> ScanItem:
        """`process` one pending item, turning any exception into an error status."""
        if not item.pending:
            return item
        with item.timed(self.name):
            try:
                self.process(item)
            except NotDiffusionWeightsError as exc:  # looked at, nothing to scan: not a failure
                item.skip(self.name, describe(exc))
            except Exception as exc:  # one checkpoint's failure must never stop the scan
                logger.warning("%s failed for %s: %s", self.name, item.name, describe(exc))
                item.fail(self.name, describe(exc), retryable=is_retryable(exc))
        return item

    @abstractmethod
    def process(self, item: ScanItem) -> None:
        """Do this stage's work for one pending item (raise to fail it)."""


def set_torch_threads(threads: int | None) -> None:
    """Limit torch's intra-op threads in this worker (several actors share the cores)."""
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
