"""Which identity vectors an Anonymizer released, and under what guarantee.

``Anonymizer.render`` is handed identity vectors and reports, per face, the guarantee they
were released under. It cannot read that off a vector, so every release is recorded here,
keyed by the vector's exact float32 bits (a SHA-256 digest of the row): a vector that comes
back unchanged (a video track reusing its release, through numpy and back included) is
recognised; anything else (raw descriptors, a donor's identity, a vector edited or released
elsewhere) is not, and ``render`` then reports nan instead of claiming a guarantee.

The ledger keeps the most recent ``capacity`` vectors (least recently used dropped first;
about 100 bytes each). Thread-safe. The digests are of released vectors, which are public
by definition, so holding them costs no privacy.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import threading

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class ReleaseRecord:
    """The guarantee of one release (identity_dp.IdentityDPResult's accounting fields)."""

    epsilon: float
    effective_epsilon: float
    delta: float
    key_supplied: bool
    key_id: str


#: what ``lookup`` returns for a vector this ledger never saw
UNKNOWN = ReleaseRecord(math.nan, math.nan, math.nan, False, "")


def _digests(vectors) -> list[bytes]:
    """One digest per row of an (N, d) float tensor or array, of its float32 bits."""
    if isinstance(vectors, torch.Tensor):
        arr = vectors.detach().to(device="cpu", dtype=torch.float32).numpy()
    else:
        arr = np.asarray(vectors, dtype=np.float32)
    arr = np.ascontiguousarray(arr.reshape(arr.shape[0], -1), dtype="<f4")
    return [hashlib.sha256(row.tobytes()).digest()[:16] for row in arr]


class ReleaseLedger:
    """LRU map: released vector (its float32 bits) -> ReleaseRecord."""

    def __init__(self, capacity: int = 1 << 16):
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be an integer >= 1, got {capacity!r}")
        self.capacity = capacity
        self._map: collections.OrderedDict[bytes, ReleaseRecord] = collections.OrderedDict()
        self._lock = threading.Lock()

    def add(self, vectors, record: ReleaseRecord) -> None:
        """Record every row of ``vectors`` (N, d) as released under ``record``."""
        digests = _digests(vectors)
        with self._lock:
            for d in digests:
                self._map[d] = record
                self._map.move_to_end(d)
            while len(self._map) > self.capacity:
                self._map.popitem(last=False)

    def lookup(self, vectors) -> list[ReleaseRecord]:
        """The record of every row of ``vectors``, UNKNOWN for rows never released here."""
        digests = _digests(vectors)
        out = []
        with self._lock:
            for d in digests:
                rec = self._map.get(d)
                if rec is not None:
                    self._map.move_to_end(d)
                out.append(rec or UNKNOWN)
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._map)
