"""A sweep's finished builds, written as each finishes into a folder beside its output (``OUT.partial/``), so an
interrupted sweep resumes (--resume) without building them again; removed once the sweep's output is written.

One folder per job key (build.Job.key: the model, candidate and every option that decides the artifact), made
under a temporary name and renamed, so a build cut off half-way is never read back. The pickle is this user's own
file, read back only by this user's --resume."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path

from .build import Built, Job

BUILT = "built.pickle"


class Journal:
    def __init__(self, folder: Path, resume: bool):
        self.folder = folder
        self.earlier = len(list(folder.glob(f"*/{BUILT}"))) if folder.is_dir() else 0  # an interrupted run's
        self.resumed = 0  # builds read back instead of made
        if folder.exists() and not resume:
            shutil.rmtree(folder)  # an earlier run's builds are not reused without --resume

    def told(self) -> str | None:
        """What the user should hear of an earlier run's builds here, if it left any."""
        if not self.earlier:
            return None
        if self.folder.is_dir():
            return f"resuming: {self.earlier} builds of an interrupted run are in {self.folder}"
        return f"{self.earlier} builds of an interrupted run were in {self.folder}: built again (--resume reuses them)"

    def load(self, job: Job) -> Built | None:
        path = self.folder / job.key / BUILT
        if not path.is_file():
            return None
        try:
            built = pickle.loads(path.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None  # written by another version: built again
        self.resumed += 1
        return built if isinstance(built, Built) else None

    def save(self, job: Job, built: Built) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{job.key}.", dir=self.folder))
        (staging / BUILT).write_bytes(pickle.dumps(built))
        try:
            os.replace(staging, self.folder / job.key)
        except OSError:  # a folder of that key is there already (the same job finished twice): keep it
            shutil.rmtree(staging, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
