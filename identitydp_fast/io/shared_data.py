"""Where the project's face data lives (never part of the package): ``$IDP_DATA`` if set,
else ``../shared/data`` next to the repository checkout. Tests, tools and training use
this one definition; tests that need the data skip when the folder is absent."""
from __future__ import annotations

import os
from pathlib import Path


def default_data_root() -> Path:
    """``$IDP_DATA`` if set, else ``../shared/data`` next to the repository checkout."""
    env = os.environ.get("IDP_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
