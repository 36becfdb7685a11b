"""Run under the emulated aarch64 Python: every job of a job file in one process (the runtime import
alone costs seconds under emulation). Needs only numpy and the runtime: no torch, no uninext-deploy.

    python worker.py jobs.json

jobs.json: [{"runtime": "ort" | "openvino", "model": PATH, "precision": "fp32" | "fp16" | "int8",
             "inputs": NPZ (array "x", samples first), "batch": N, "out": NPZ}]
Progress goes to stderr as "progress DONE TOTAL", one line per batch.
"""

import json
import platform
import sys

import numpy as np


def ort_runner(model: str, precision: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # threads do not help under emulation; processes do
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return (lambda x: session.run(None, {name: x})[0]), {"runtime": "onnxruntime", "version": ort.__version__}


def openvino_runner(model: str, precision: str):
    import openvino as ov

    core = ov.Core()
    capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    hint = "f16" if precision == "fp16" and "FP16" in capabilities else "f32"
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": 1})
    return (lambda x: compiled(x)[0]), {"runtime": "openvino", "version": ov.get_version(),
                                         "inference_precision": hint}


def main() -> None:
    jobs = json.load(open(sys.argv[1]))
    total = sum(-(-len(np.load(job["inputs"])["x"]) // job["batch"]) for job in jobs)
    done = 0
    for job in jobs:
        run, info = {"ort": ort_runner, "openvino": openvino_runner}[job["runtime"]](job["model"], job["precision"])
        x = np.load(job["inputs"])["x"]
        batch = job["batch"]
        pad = (-len(x)) % batch
        padded = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x
        outputs = []
        for start in range(0, len(padded), batch):
            outputs.append(np.asarray(run(np.ascontiguousarray(padded[start:start + batch]))))
            done += 1
            print(f"progress {done} {total}", file=sys.stderr, flush=True)
        info.update(machine=platform.machine())
        np.savez(job["out"], y=np.concatenate(outputs)[: len(x)], info=json.dumps(info))


if __name__ == "__main__":
    main()
