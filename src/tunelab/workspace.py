"""Where tunelab keeps its state: one home directory with the database and the artifacts.

`TUNELAB_HOME` (default `./.tunelab`) holds `tunelab.db` and `artifacts/`. `TUNELAB_DATABASE_URL` points the store at
another database (e.g. PostgreSQL) with no code change; files always live under the home.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    home: Path
    database_url: str

    @classmethod
    def from_env(cls) -> Workspace:
        home = Path(os.environ.get("TUNELAB_HOME", ".tunelab")).resolve()
        url = os.environ.get("TUNELAB_DATABASE_URL") or f"sqlite:///{home / 'tunelab.db'}"
        return cls(home=home, database_url=url)

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts"

    @property
    def model_cache(self) -> Path:
        """Base models converted once (e.g. from GGUF); TUNELAB_MODEL_CACHE shares them between workspaces."""
        shared = os.environ.get("TUNELAB_MODEL_CACHE")
        return Path(shared).resolve() if shared else self.home / "base-models"

    def dataset_dir(self, dataset_id: str) -> Path:
        return self.artifacts / "datasets" / dataset_id

    def ensure(self) -> None:
        self.artifacts.mkdir(parents=True, exist_ok=True)
