"""What an optimize run found, as data: its candidates, the winner and the budget; ``results.json`` is
this, and the reports are rendered from it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..device.compare import Metrics, Miss
from ..device.timing import Latency
from ..errors import UserError
from ..limits import within

RESULTS = "results.json"


@dataclass
class Candidate:
    target: str
    precision: str
    calib: str | None = None
    fallback: bool = False
    latency: Latency | None = None  # on this machine, in turns with the others
    device_latency: Latency | None = None  # on the --device, in turns there (it ranks the candidates then); over
    # a fleet, on the device where it is slowest
    fleet_latency: dict[str, Latency] = field(default_factory=dict)  # over a fleet: on each device, in turns there
    photos: Metrics | None = None
    random: Metrics | None = None
    failed: list[Miss] = field(default_factory=list)  # budget misses; empty and no error: it meets the budget
    error: str | None = None  # could not be built or run here (or, TensorRT without a GPU, not timed here)
    bundle_error: str | None = None  # fastest within the budget, but its bundle's golden check failed
    skipped: str | None = None  # not tried here, and why (a runtime that cannot run on this machine)
    kept_float: int = 0  # INT8: quantizable nodes left in float by the model's hints
    float_blocks: list[str] = field(default_factory=list)  # INT8 fallback: blocks returned to float, worst first
    gflops: float | None = None
    roofline_gflops: float | None = None
    runner: str = ""
    peak_rss_mb: float | None = None  # of a process running it with its runtime alone (memory.py)
    artifact_mb: float | None = None
    # how it was built (sweep/): {"on": host:pid of the process (a Dask worker, or this one), "seconds",
    # "peak_mb": that process's peak resident memory so far, "fetch_seconds": its result's way back here}
    build: dict | None = None

    @property
    def name(self) -> str:
        extra = ", ".join(x for x in (self.calib, "fallback" if self.fallback else None) if x)
        return f"{self.target} {self.precision}" + (f" ({extra})" if extra else "")

    @property
    def passed(self) -> bool:
        return (self.error is None and self.skipped is None and not self.failed and self.bundle_error is None
                and self.latency is not None)

    @property
    def ranked_latency(self) -> Latency | None:
        """What ranks it: its latency on the device where it was timed there, else here."""
        return self.device_latency or self.latency

    @property
    def roofline_pct(self) -> float | None:
        return 100 * self.gflops / self.roofline_gflops if self.gflops and self.roofline_gflops else None

    def as_dict(self) -> dict:
        data = asdict(self)
        data.update(name=self.name, passed=self.passed, roofline_pct=self.roofline_pct)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Candidate":
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("latency", "device_latency"):
            fields[key] = Latency(**fields[key]) if fields.get(key) else None
        fields["fleet_latency"] = {name: Latency(**lat) for name, lat in (fields.get("fleet_latency") or {}).items()}
        for key in ("photos", "random"):
            fields[key] = Metrics.from_dict(fields[key]) if fields.get(key) else None
        fields["failed"] = [Miss.from_dict(miss) for miss in fields.get("failed", [])]
        return cls(**fields)


@dataclass
class OptimizeResult:
    model: str
    input_shape: list[int]
    platform: str
    threads: int
    budget: dict  # {"cosine": [bound, "min"]} or {"top1": [bound, "min"]}
    eager: Latency | None  # measured in turns with the candidates
    gmacs: float
    candidates: list[Candidate]
    winner: int | None = None
    layers: list[dict] = field(default_factory=list)  # per-layer time of the winner
    bundle: str | None = None
    machine: str = ""
    note: str = ""
    device: dict | None = None  # --device: its name, CPU, architecture, state and warnings while timed
    # a fleet: each device's name, reached, error or CPU, architecture, platform, state, warnings, and its winner
    # (a candidate index), bundle (or bundle_error); ``pick``: each-device or slowest-device (optimize.PICKS)
    fleet: list[dict] | None = None
    pick: str | None = None

    def as_dict(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data.update(eager=self.eager.as_dict(), candidates=[c.as_dict() for c in self.candidates])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "OptimizeResult":
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields.update(eager=Latency(**data["eager"]), candidates=[Candidate.from_dict(c) for c in data["candidates"]])
        return cls(**fields)

    @property
    def class_change(self) -> str | None:
        """What a user must hear when the winner changes the top-1 class of any photo (a cosine budget allows
        it: ConvMLP-S at 96 px won at top-1 agreement 0.90), else None."""
        best = self.best
        photos = best.photos if best else None
        if photos is None or photos.top1 is None or photos.top1 >= 1.0:
            return None
        changed = round((1.0 - photos.top1) * photos.samples)
        return (f"the winner changes the top-1 class of {changed} of {photos.samples} photos (top-1 agreement "
                f"{photos.top1:.2f}); --max-top1-drop 0 keeps every photo's class")

    @classmethod
    def load(cls, path: str | Path) -> "OptimizeResult":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{path} is not a results.json written by `uninext-deploy optimize` or `report`") from None

    @property
    def timed_devices(self) -> list[dict]:
        """Over a fleet, the devices that timed the candidates (reached, with their bundles run there)."""
        return [d for d in self.fleet or [] if d.get("platform")]

    @property
    def best(self) -> Candidate | None:
        return self.candidates[self.winner] if self.winner is not None else None


def budget_tolerance(min_cosine: float | None, max_top1_drop: float | None) -> dict:
    if min_cosine is not None and max_top1_drop is not None:
        raise UserError("--min-cosine and --max-top1-drop exclude each other; pick one budget")
    if max_top1_drop is not None:
        within("--max-top1-drop", max_top1_drop)  # a percentage
        return {"top1": (1 - max_top1_drop / 100, "min")}
    cosine = 0.99 if min_cosine is None else min_cosine
    within("--min-cosine", cosine)
    return {"cosine": (cosine, "min")}
