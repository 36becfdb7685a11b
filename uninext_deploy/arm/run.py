"""Run artifacts on the emulated aarch64 CPU and compare them with PyTorch and with the x86 run.

All jobs of one parity check go to one worker process, which pays the emulated runtime import once.
Tolerances: FP32 ARM vs x86 within 1e-5 of the output scale (measured on ConvMLP-S: 2.6e-7). INT8 and FP16 kernels differ by design between the two ISAs (fixed-point vs float requantisation,
native FP16 on ARM), by one quantization step per layer; that bounds a single quantized output by one step, but our logits come from a float classifier after dozens of quantized layers whose step
differences compound, so they have no single step to count; even with the classifier quantized
(``--quantize-classifier``), ARM and x86 differed by 9 output steps on ConvMLP-S (0.137 vs a step of
0.0152) while each stayed as close to PyTorch as the other (cosine 0.994 vs 0.993). ARM vs x86 must agree on top-1 wherever the
decision is not a near-tie (parity.Metrics.top1_decisive), with cosine >= 0.99 (measured, ConvMLP-S INT8:
0.9956 at 64 px and 0.9972 at 96 px; one near-tied photo of eleven flipped).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifact import Artifact
from ..console import progress
from ..device import runtimes
from ..device.compare import golden_outputs
from ..errors import UserError
from .environment import ArmEnvironment

CROSS_TOLERANCES = {
    "fp32": {"rel_max_abs": (1e-5, "max")},
    "fp16": {"cosine": (0.99, "min"), "top1_decisive": (1.0, "min")},
    "int8": {"cosine": (0.99, "min"), "top1_decisive": (1.0, "min")},
}
SLOWDOWN = {"fp32": 270.0, "fp16": 270.0, "int8": 180.0}  # emulated vs native, measured on cortex-a76
STARTUP_SECONDS = 6.0
WORKER = Path(__file__).parent.parent / "device" / "worker.py"


@dataclass
class ArmJob:
    artifact: Artifact
    x: np.ndarray


def runtime_for(backend: str, precision: str, cpu: str) -> str:
    """The runtime that runs ``backend``'s artifacts on the emulated ``cpu``, or one UserError saying why
    this combination cannot run there (from the runtime's declaration)."""
    problem = runtimes.emulation_problem(backend, precision, cpu)
    if problem:
        raise UserError(problem)
    return backend


def run_jobs(jobs: list[ArmJob], cpu: str, host_ms: float, env: ArmEnvironment) -> list[dict]:
    """Outputs of every job on the emulated ``cpu``; ``host_ms`` (native time per batch) sizes the estimate.

    Jobs are spread over one single-threaded worker process per core: under emulation, intra-op threads
    give no speed-up but parallel processes do (measured: 1.7x with two).
    """
    names = {runtime_for(job.artifact.backend, job.artifact.precision, cpu) for job in jobs}
    if len(names) != 1:
        raise UserError("one ARM run takes artifacts of one runtime")
    runtime = names.pop()
    env.ensure(runtime, cpu)
    workers = max(1, min(len(jobs), runtimes.usable_cpus()))
    with tempfile.TemporaryDirectory(prefix="uninext-arm-") as tmp:
        groups: list[list[dict]] = [[] for _ in range(workers)]
        for i, job in enumerate(jobs):
            np.savez(Path(tmp) / f"in{i}.npz", x=job.x)
            groups[i % workers].append({"runtime": runtime, "model": str(job.artifact.file("model")),
                                        "precision": job.artifact.precision, "inputs": f"{tmp}/in{i}.npz",
                                        "batch": job.artifact.input_shape[0], "out": f"{tmp}/out{i}.npz"})
        commands = []
        for w, group in enumerate(groups):
            (Path(tmp) / f"jobs{w}.json").write_text(json.dumps(group))
            commands.append(env.command(runtime, cpu, WORKER, str(Path(tmp) / f"jobs{w}.json")))
        batches = sum(-(-len(job.x) // job.artifact.input_shape[0]) for job in jobs)
        slowdown = max(SLOWDOWN[job.artifact.precision] for job in jobs)
        estimate = STARTUP_SECONDS + batches * host_ms * slowdown / 1000.0 / workers
        with progress.step(f"running {runtime} on the emulated aarch64 {cpu}: about {estimate:.0f} s",
                           total=batches) as running:
            _run_workers(commands, running, f"{runtime} on emulated {cpu}")
        return [golden_outputs(np.load(f"{tmp}/out{i}.npz")) for i in range(len(jobs))]


def _run_workers(commands, running: progress.Step, label) -> None:
    """Run the workers side by side, counting the batches they report done (device/worker.py's ``progress N``
    lines, summed) on ``running``; one failing worker is one clear error."""
    procs = [subprocess.Popen(command, env=environ, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
             for command, environ in commands]
    done = [0] * len(procs)
    errors: list[str] = []
    lock = threading.Lock()

    def follow(index, proc):
        for line in proc.stderr:
            if line.startswith("progress "):
                with lock:
                    done[index] = int(line.split()[1])
                    running.update(sum(done))
            elif "MIDR_EL1 sysfs" not in line:  # OpenVINO's harmless notice under qemu
                errors.append(line.rstrip())

    readers = [threading.Thread(target=follow, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for reader in readers:
        reader.start()
    codes = [proc.wait() for proc in procs]
    for reader in readers:
        reader.join()
    if any(codes):
        raise UserError(f"the emulated {label} worker failed: {(errors or ['no message'])[-1][:200]}")
