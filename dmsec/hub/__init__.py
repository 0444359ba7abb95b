"""Hub crawling and safe checkpoint pulling: local folders, Hugging Face, Civitai, S3.

The scan's entry points:

    source = source_from_uri("hf://?search=lora")         # or a path, civitai://, s3://bucket/p
    refs = source.list(ListFilter(kinds={"lora"}, since=...))   # lazy, paginated
    refs = ledger.pending(refs, config_hash)               # skip what was already scanned
    result = Puller(cache_dir, PullPolicy()).pull(source, ref)  # PullResult: path or error
    ledger.mark(ref, config_hash, result.status)

Backends are imported on first use, so listing S3 does not import huggingface_hub.
"""

from dmsec.hub.cache import CheckpointCache, default_cache_root
from dmsec.hub.ledger import Ledger, LedgerEntry, scan_config_hash
from dmsec.hub.pull import PullCheckpoint, PulledFile, Puller, PullResult, pull
from dmsec.hub.pull_policy import PullPolicy
from dmsec.hub.ref import KINDS, CheckpointFile, CheckpointRef, Kind
from dmsec.hub.retry import RateLimitedError, RetryPolicy
from dmsec.hub.source import (
    HubError,
    HubSource,
    ListFilter,
    RefNotFoundError,
    get_source_class,
    register_source,
    source_from_uri,
    source_names,
)

__all__ = [
    "KINDS",
    "CheckpointCache",
    "CheckpointFile",
    "CheckpointRef",
    "HubError",
    "HubSource",
    "Kind",
    "Ledger",
    "LedgerEntry",
    "ListFilter",
    "PullCheckpoint",
    "PullPolicy",
    "PullResult",
    "PulledFile",
    "Puller",
    "RateLimitedError",
    "RefNotFoundError",
    "RetryPolicy",
    "default_cache_root",
    "get_source_class",
    "pull",
    "register_source",
    "scan_config_hash",
    "source_from_uri",
    "source_names",
]
