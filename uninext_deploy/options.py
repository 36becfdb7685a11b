"""Option groups shared by every command and the Python API, each validated once, here.

The CLI expands each group into the same flags on every command that takes it (cli.py), and the API takes
the group objects, so a Python caller gets the same one-line errors as a user of the CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

from .backends.registry import DEFAULT_TARGET  # noqa: F401 (re-exported: the option groups' defaults)
from .device import runtimes
from .errors import UserError
from .limits import MIN_OPSET, allowed, within

CALIB_METHODS = ("minmax", "entropy", "percentile")
PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_MODEL = "uninext_t"
DEFAULT_CPU = "cortex-a76"  # Jetson Orin / Raspberry Pi 5 class
DEFAULT_ITERS = 50
# a remote step's time-out; the slowest step is the runtime set-up (python3 -m venv, pip install of numpy,
# Pillow and the runtime): 12-21 s here from pip's cache on 2 busy cores, minutes on a board with a slow
# network or SD card
DEVICE_TIMEOUT = 1200.0


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)  # normalising a frozen dataclass in __post_init__


def input_size(value) -> tuple[int, int] | None:
    """``224``, ``"224"``, ``"224x192"``, ``"224,192"`` or ``(224, 192)`` -> (224, 192); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p for p in re.split(r"[x,\s]+", value.strip().lower()) if p]
        if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
            raise UserError(f"--input-size {value!r}: give a side (224) or height and width (224x192), each "
                            f"{allowed('--input-size')} pixels")
        value = tuple(int(p) for p in parts)
    sides = (value, value) if isinstance(value, int) else tuple(value)
    if len(sides) == 1:
        sides = sides * 2
    if len(sides) != 2 or not all(isinstance(s, int) and s > 0 for s in sides):
        raise UserError(f"--input-size {value!r}: give a side (224) or height and width (224x192), each "
                        f"{allowed('--input-size')} pixels")
    for side in sides:
        within("--input-size", side)
    return int(sides[0]), int(sides[1])


@dataclass(frozen=True)
class ModelOptions:
    """Which model and how it is built: registered name, input size (None: native), weights or seed, and
    what it outputs: the logits of a ``num_classes`` classifier (None: the checkpoint's, else 1000), or with
    ``features`` ("all", stage indices or names, as ``--features 1,2,3``) the feature maps of those stages,
    normalised to sorted indices. ``weights``: a checkpoint file, an http(s) URL (``URL#sha256=HEX`` pins it) or
    a published name (``in1k``, ``cifar10``, ``convmlp_s.in1k_ft_cifar10``, kept as ``MODEL.TAG``); a URL or
    name is downloaded into the user cache here, once (see :func:`models.weights.resolve_weights`)."""

    model: str = DEFAULT_MODEL
    input_size: int | tuple[int, int] | str | None = None
    weights: str | Path | None = None
    seed: int = 0
    features: str | tuple[int, ...] | None = None
    num_classes: int | None = None

    def __post_init__(self):
        from .models import get_spec
        from .models._registry import resolve_size
        from .models.features import out_indices
        from .models.weights import resolve_weights

        spec = get_spec(self.model)  # unknown names and sizes the family cannot take: one line, before any work
        _set(self, "model", spec.name)
        _set(self, "input_size", resolve_size(spec, input_size(self.input_size)) if self.input_size else None)
        within("--seed", self.seed)
        within("--num-classes", self.num_classes)
        if self.features is not None:
            if self.num_classes is not None:
                raise UserError("--num-classes sizes the classifier, which a feature model has none of; "
                                "drop --num-classes or --features")
            _set(self, "features", out_indices(spec.features, spec.name, self.features))
        # last: a URL or published name is downloaded, which only input valid in every other way deserves
        _set(self, "weights", resolve_weights(spec, self.weights or None, self.num_classes))


@dataclass(frozen=True)
class Int8Options:
    """How to quantize: calibration data and method, what stays float, the fallback target.

    ``min_cosine`` (``--int8-min-cosine``) is the INT8 fallback target: blocks return to float, most
    sensitive first, until the QDQ graph's cosine to *the float graph* reaches it. It is not the optimize
    budget, which is the cosine to *PyTorch*. ``weight_bits`` (``--int8-weight-bits``): 7 keeps an x86 CPU
    without VNNI from saturating its INT8 dot products; None: 7 where this machine's would, else 8
    (``resolved_weight_bits``), so the parity proven here holds.
    """

    calib: str | Path | None = None  # folder of images; None: the shipped photos, augmented
    calib_size: int = 32
    method: str = "percentile"
    quantize_classifier: bool = False
    min_cosine: float | None = None
    seed: int = 0
    weight_bits: int | None = None

    def __post_init__(self):
        _set(self, "method", self.method.lower())
        if self.method not in CALIB_METHODS:
            raise UserError(f"unknown calibration method {self.method!r}; choose one of {', '.join(CALIB_METHODS)}")
        within("--int8-min-cosine", self.min_cosine)
        within("--int8-weight-bits", self.weight_bits)
        within("--calib-size", self.calib_size)
        within("--seed", self.seed)
        if self.calib is not None:  # refused before any export starts, not when calibration reaches it
            from .images import find_images

            find_images(self.calib, "--calib folder")

    @property
    def resolved_weight_bits(self) -> int:
        """``weight_bits``, or where None 7 if this CPU's INT8 kernels saturate on 8-bit weights, else 8: asked
        of the kernels when first needed, not when options are made (defaults are made at import)."""
        return self.weight_bits or (7 if runtimes.int8_dot_saturates() else 8)


@dataclass(frozen=True)
class TrtOptions:
    """TensorRT: the version the graph is checked against, forcing past the check, a Jetson DLA core."""

    trt_version: str | None = None
    force: bool = False
    dla_core: int | None = None

    def __post_init__(self):
        within("--dla-core", self.dla_core)
        if self.trt_version is not None:
            from .backends.trt_check import parse_version

            parse_version(self.trt_version)  # one line before any work, not after the export

    def backend_options(self) -> dict:
        """The options the user set (a backend that does not take them refuses them by name)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None and getattr(self, f.name) is not False}


@dataclass(frozen=True)
class PlatformOptions:
    """Where the artifact runs: this machine, or linux/arm64 checked on an emulated ``cpu``."""

    platform: str = "host"
    cpu: str = DEFAULT_CPU
    arm_cache: str | Path | None = None

    def __post_init__(self):
        from .arm.platforms import check_cpu, normalise_platform

        _set(self, "platform", normalise_platform(self.platform))
        check_cpu(self.cpu)

    @property
    def arm(self) -> bool:
        return self.platform == "linux/arm64"


@dataclass(frozen=True)
class DeviceOptions:
    """Where the bundle runs instead of this machine: ``device``, DEST (``user@host[:port]`` or a Host alias of
    ~/.ssh/config; None: this machine), or several DESTs (a list: --device given again), which become ``devices``;
    ``devices``: many devices at once, an Ansible-style inventory ``FILE.yml[:GROUP]`` or ``DEST,DEST``
    (devices/inventory.py); ``accept_new_host_key``: trust the key of a host known_hosts does not list yet
    (OpenSSH's accept-new; a changed key is refused all the same); ``timeout``: the seconds any one remote step
    (upload, runtime set-up, run) may take before it is ended there."""

    device: str | None = None
    devices: str | None = None
    accept_new_host_key: bool = False
    timeout: float = DEVICE_TIMEOUT

    def __post_init__(self):
        from .devices.base import parse_destination

        named = [self.device] if isinstance(self.device, str) else list(self.device or [])
        if named and self.devices is not None:
            raise UserError("give the devices once: --device DEST (again for more), or --devices")
        if len(named) > 1:
            _set(self, "devices", ",".join(parse_destination(text).text for text in named))
        _set(self, "device", parse_destination(named[0]).text if len(named) == 1 else None)
        if self.device is None and self.devices is None and self.accept_new_host_key:
            raise UserError("--accept-new-host-key is for a device reached over SSH; add --device DEST")
        within("--device-timeout", self.timeout)

    @property
    def fleet(self) -> bool:
        """Several devices (``devices``), each run in parallel (devices/fleet.py)."""
        return self.devices is not None


@dataclass(frozen=True)
class BuildOptions:
    """Where optimize builds its candidates (export, calibration, parity against PyTorch; never timing): a
    local Dask cluster of ``workers`` one-thread processes (None: one per CPU, as memory allows; 0: this
    process, one after another), or the Dask scheduler at ``cluster`` (``tcp://HOST:8786``), whose workers have
    this package installed; ``resume``: reuse the builds an interrupted run of the same sweep finished."""

    cluster: str | None = None
    workers: int | None = None
    resume: bool = False

    def __post_init__(self):
        within("--workers", self.workers)
        if self.cluster is not None:
            if self.workers is not None:
                raise UserError("--workers sizes the local cluster; the --cluster scheduler has its own workers, "
                                "so drop one of them")
            if not re.fullmatch(r"(tcp|tls)://[\w.\-\[\]:]+:\d{1,5}", self.cluster):
                raise UserError(f"--cluster {self.cluster!r} is not a Dask scheduler address; give "
                                "tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786")


@dataclass(frozen=True)
class TimingOptions:
    """How latency is measured: threads (None: all cores), warm-up runs, then ``iters`` runs or ``seconds``;
    ``fresh``: time on a device again even where the results store has the same bundle timed there the same way
    (results/store.py)."""

    threads: int | None = None
    warmup: int = 10
    iters: int | None = None
    seconds: float | None = None
    fresh: bool = False

    def __post_init__(self):
        if self.iters is not None and self.seconds is not None:
            raise UserError("--iters and --seconds exclude each other; pick one")
        within("--threads", self.threads)
        within("--warmup", self.warmup)
        within("--iters", self.iters)
        within("--seconds", self.seconds)

    @property
    def runs(self) -> int:
        return self.iters or DEFAULT_ITERS


@dataclass(frozen=True)
class Inputs:
    """Parity inputs: the photos of ``images`` (a folder; None: the shipped ones) and ``random`` seeded
    standard-normal inputs (reported for INT8, gated for FP32 and FP16)."""

    images: str | Path | None = None
    random: int = 4

    def __post_init__(self):
        within("--random-inputs", self.random)  # at least 1: FP32 and FP16 are gated on them


def check_opset(opset: int | None) -> None:
    if opset is not None and opset < MIN_OPSET:
        raise UserError(f"opset {opset} is too old: LayerNormalization needs opset >= {MIN_OPSET}; --opset must be "
                        f"{allowed('--opset')}")
    within("--opset", opset)


def check_threads(threads: int | None) -> int | None:
    within("--threads", threads)
    return threads


def check_batch(batch: int, flag: str = "--batch") -> int:
    within(flag, batch)
    return batch
