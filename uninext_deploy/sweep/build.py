"""One candidate built where a worker runs: exported, its memory measured, compared with PyTorch on the
photos, and sent back as data (its filled fields, its ParityRun and its files' bytes), so a worker on another
machine needs only this package installed and shares no folder with the host. Nothing here times anything:
latency is measured on the devices, or on this machine after every build (optimize.py)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import socket
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePosixPath

from ..artifact import Artifact, DiskFull
from ..backends import options_for
from ..device.timing import peak_rss_mb
from ..errors import UserError
from ..options import Int8Options, ModelOptions, TrtOptions
from ..results import Candidate


@dataclass(frozen=True)
class Job:
    """What to build: ``candidate`` (target, precision, calibration, fallback) of ``model`` at ``batch``, judged
    by ``budget``, with the sweep's INT8 and TensorRT options, on ``threads`` threads."""

    model: ModelOptions
    candidate: Candidate
    batch: int
    budget: dict
    int8: Int8Options
    trt: TrtOptions
    threads: int

    @property
    def key(self) -> str:
        """The job's identity across runs (a resumed sweep reuses a finished job of the same key)."""
        what = {"model": asdict(self.model), "target": self.candidate.target, "precision": self.candidate.precision,
                "calib": self.candidate.calib, "fallback": self.candidate.fallback, "batch": self.batch,
                "budget": self.budget, "int8": asdict(self.int8), "trt": asdict(self.trt), "threads": self.threads}
        return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:20]


@dataclass
class Built:
    """A finished job: the candidate's fields filled in, its ParityRun (None when it could not be built), the
    artifact's files {relative path: bytes}, where and how long it took (``seconds``, on the worker) and how long
    its bytes took to come to the host (``fetched``: the engine's cost, with scheduling)."""

    candidate: Candidate
    run: object | None
    files: dict[str, bytes]
    worker: str
    seconds: float
    fetched: float = 0.0

    @classmethod
    def failed(cls, job: "Job", why: str, worker: str = "") -> "Built":
        """The job's end without an artifact: its candidate with ``error`` saying why."""
        return cls(replace(job.candidate, error=why), None, {}, worker, 0.0)


def build(job: Job, inputs) -> Built:
    """Run ``job`` here: ``inputs`` are the model's (x_images, x_random, references), made once by the host."""
    from ..parity import check_artifact

    start, candidate = time.monotonic(), replace(job.candidate)
    with tempfile.TemporaryDirectory(prefix="uninext-build-") as root:
        artifact = _export(job, candidate, Path(root) / "artifact")
        run = None
        if artifact is not None:
            from ..device.compare import failures
            from ..memory import footprint
            from ..parity import runner_for

            graph = artifact.manifest.get("precision_graph") or {}
            candidate.kept_float = len(graph.get("kept_float", []))
            candidate.float_blocks = list(graph.get("fallback", []))
            memory = footprint(artifact, job.threads)
            candidate.peak_rss_mb, candidate.artifact_mb = memory["peak_rss_mb"], memory["artifact_mb"]
            x_images, x_random, references = inputs
            run = check_artifact(artifact, _torch_model(job.model), x_images, x_random, references=references,
                                 runner=runner_for(artifact, job.threads))
            candidate.photos, candidate.random, candidate.runner = run.images, run.random, run.runner
            candidate.failed = failures(run.images, job.budget, "images")
        files = {p.relative_to(artifact.path).as_posix(): p.read_bytes()
                 for p in sorted(artifact.path.rglob("*")) if p.is_file()} if artifact is not None else {}
    seconds, on = round(time.monotonic() - start, 3), f"{socket.gethostname()}:{os.getpid()}"
    candidate.build = {"on": on, "seconds": seconds, "peak_mb": round(peak_rss_mb())}
    return Built(candidate, run, files, on, seconds)


def _export(job: Job, candidate: Candidate, out: Path) -> Artifact | None:
    """The candidate's artifact, or None with ``candidate.error`` saying why it cannot be built."""
    from ..export.precision import LossyInt8Warning
    from ..pipeline import export

    int8 = replace(job.int8, method=candidate.calib or job.int8.method,
                   min_cosine=job.int8.min_cosine if candidate.fallback else None) \
        if candidate.precision == "int8" else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LossyInt8Warning)  # a missed budget is retried with fallback
            return export(job.model, candidate.target, precision=candidate.precision, batch=job.batch, out=out,
                          int8=int8, trt=TrtOptions(**options_for(candidate.target, job.trt.backend_options())))
    except DiskFull:
        raise
    except UserError as exc:  # MissingDependency included
        candidate.error = str(exc)
        return None


@functools.lru_cache(maxsize=2)
def _torch_model(model: ModelOptions):
    """The PyTorch model, made once per worker process and model (parity locates a divergence with it)."""
    from ..pipeline import build_model

    return build_model(model)


def unpack(built: Built, folder: Path) -> Artifact:
    """The artifact a worker sent, written at ``folder`` and checked against its own manifest's checksums."""
    from ..device.integrity import IntegrityError, check_files

    for name, data in built.files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise UserError(f"a worker sent a file outside its artifact ({name}); is the cluster running this "
                            "package?")
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    artifact = Artifact.open(folder)
    try:
        check_files(folder, artifact.manifest)
    except IntegrityError as exc:
        raise UserError(f"the artifact of {built.candidate.name} from {built.worker} is damaged: {exc}") from None
    if built.run is not None:
        built.run.artifact = str(folder)
    return artifact
