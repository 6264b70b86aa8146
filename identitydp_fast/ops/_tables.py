"""Device copies of the sampler's threshold tables, cached per (params, device)."""
from __future__ import annotations

import functools

import numpy as np
import torch

from ..privacy.accounting import LaplaceParams


@functools.lru_cache(maxsize=64)
def table_on(params: LaplaceParams, device: torch.device) -> torch.Tensor:
    """params.table as an int32 tensor (same bits as uint32) on ``device``."""
    host = torch.from_numpy(np.ascontiguousarray(params.table).view(np.int32).copy())
    return host.to(device)
