"""Run under the emulated aarch64 Python: every job of a job file in one process (the runtime import
alone costs seconds under emulation). Needs only numpy, the runtime and runtimes.py beside it.

    python worker.py jobs.json

jobs.json: [{"runtime": "ort" | "openvino", "model": PATH, "precision": "fp32" | "fp16" | "int8",
             "inputs": NPZ (array "x", samples first), "batch": N, "out": NPZ}]
Progress goes to stderr as "progress DONE TOTAL", one line per batch.
"""

import json
import platform
import sys

import numpy as np

import runtimes


def main() -> None:
    jobs = json.load(open(sys.argv[1]))
    total = sum(-(-len(np.load(job["inputs"])["x"]) // job["batch"]) for job in jobs)
    done = 0
    for job in jobs:
        # one thread each: under emulation threads do not help, processes do
        run, info = runtimes.load(job["runtime"], job["model"], job["precision"], threads=1)
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
