"""One writer per S3 results location: a lock object kept alive by a heartbeat.

    lock = S3Lock(client, "bucket", "scans/.lock", "s3://bucket/scans")
    with lock:                 # conditional PUT (If-None-Match: *), then a renewal thread
        ...; lock.check()      # raises if another writer took the lock over meanwhile

The holder rewrites the object every `heartbeat_s` seconds, so its age (the store's own clock:
the response's `Date` minus the object's `LastModified`, no host clock involved) stays small
while the holder lives, however long it runs. A lock not renewed for `stale_after_s` belongs to
a dead holder and is taken over. A renewal first reads the object back: if another writer's
token is there (this holder stalled past `stale_after_s` and lost it), the lock is marked lost
and `check()` raises, so the stalled holder stops publishing instead of interleaving commits.
Release deletes the object only if it still holds this holder's token.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from dmsec.results.store import ResultsError

logger = logging.getLogger(__name__)

#: a holder renews its lock this often (seconds)
HEARTBEAT_S = 60.0
#: a lock not renewed for this long is taken over (ten missed heartbeats)
STALE_AFTER_S = 600.0


class S3Lock:
    """The lock object `key` in `bucket` (see the module docstring); `uri` names it in errors."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        uri: str,
        *,
        stale_after_s: float = STALE_AFTER_S,
        heartbeat_s: float | None = HEARTBEAT_S,
        wait_s: float = 0.0,
        poll_s: float = 2.0,
    ) -> None:
        """`heartbeat_s=None` never renews (tests of a dead holder); `wait_s`: how long to wait
        for a live holder to release before giving up (0: fail at once)."""
        if stale_after_s < 0 or wait_s < 0 or poll_s <= 0:
            raise ValueError(f"`stale_after_s` and `wait_s` must be >= 0 and `poll_s` > 0; got {stale_after_s}, {wait_s}, {poll_s}")  # fmt: skip
        if heartbeat_s is not None and heartbeat_s <= 0:
            raise ValueError(f"`heartbeat_s` must be > 0 or None; got {heartbeat_s}")
        self.client, self.bucket, self.key, self.uri = client, bucket, key, uri
        self.stale_after_s, self.heartbeat_s = stale_after_s, heartbeat_s
        self.wait_s, self.poll_s = wait_s, poll_s
        self.token = uuid.uuid4().hex
        self.renewals = 0
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the object ------------------------------------------------------------------------------
    def _body(self, since: float) -> bytes:
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                 "since": since, "renewed": time.time()}  # fmt: skip
        return json.dumps(owner).encode()

    def _read(self) -> tuple[dict[str, Any], float | None] | None:
        """(the holder's record, the lock's age in seconds by the store's clock), or None if gone."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except self.client.exceptions.NoSuchKey:
            return None
        body = response["Body"].read()
        try:
            held = dict(json.loads(body))
        except (ValueError, TypeError):  # unreadable: judged by its age alone
            held = {}
        return held, _age_s(response)

    # -- taking and releasing --------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lock (waiting up to `wait_s` for a live holder); start the heartbeat."""
        since = time.time()
        deadline = time.monotonic() + self.wait_s
        while True:
            if self._try_put(since):
                break
            found = self._read()
            if found is None:
                continue  # released between our PUT and GET: try again
            held, age = found
            if age is None:  # no server clock: the holder's own renewal time
                age = time.time() - float(held.get("renewed", held.get("since", 0)))
            if age >= self.stale_after_s:
                logger.warning("taking over the lock of %s: not renewed for %.0f s (held by %s)",
                               self.uri, age, _who(held))  # fmt: skip
                self.client.delete_object(Bucket=self.bucket, Key=self.key)
                continue
            if time.monotonic() >= deadline:
                raise ResultsError(
                    f"another writer holds {self.uri} (lock held by {_who(held)}, renewed "
                    f"{age:.0f} s ago); retry when it ends, or delete s3://{self.bucket}/{self.key} "
                    "only if that process is dead"
                )
            time.sleep(self.poll_s)
        if self.heartbeat_s is not None:
            self._thread = threading.Thread(target=self._beat, name="dmsec-s3-lock", daemon=True)
            self._thread.start()

    def _try_put(self, since: float) -> bool:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=self._body(since),
                                   IfNoneMatch="*")  # fmt: skip
            return True
        except self.client.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise ResultsError(f"cannot lock {self.uri}: {exc}") from None

    def _beat(self) -> None:
        assert self.heartbeat_s is not None
        since = time.time()
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.renew(since)
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried at the next one
                logger.warning("could not renew the lock of %s: %s", self.uri, exc)
            if self.lost:
                return

    def renew(self, since: float | None = None) -> None:
        """Rewrite the lock with a fresh time if it is still ours; else mark it lost."""
        found = self._read()
        held = found[0] if found else {}
        if held.get("token") != self.token:
            self.lost = f"the lock of {self.uri} was taken over by {_who(held) if found else 'nobody (deleted)'}"  # fmt: skip
            logger.error("%s: stop writing", self.lost)
            return
        self.client.put_object(Bucket=self.bucket, Key=self.key,
                               Body=self._body(since or float(held.get("since", time.time()))))  # fmt: skip
        self.renewals += 1

    def check(self) -> None:
        """Raise `ResultsError` if the lock was lost (call before each write)."""
        if self.lost:
            raise ResultsError(f"{self.lost} (this writer stalled past {self.stale_after_s:.0f} s without renewing); nothing more is written")  # fmt: skip

    def release(self) -> None:
        """Stop the heartbeat; delete the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        found = self._read()
        if found is not None and found[0].get("token") == self.token:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)

    def __enter__(self) -> S3Lock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _age_s(response: dict[str, Any]) -> float | None:
    """Seconds since the object was last written, by the store's clock (None if unknown)."""
    modified = response.get("LastModified")
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not isinstance(modified, datetime) or not date:
        return None
    try:
        now = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    return max(0.0, (now - modified).total_seconds())


def _who(held: dict[str, Any]) -> str:
    return f"{held.get('host', '?')} pid {held.get('pid', '?')}"
