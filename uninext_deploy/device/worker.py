"""Run under the emulated aarch64 Python: every job of a job file in one process (the runtime import
alone costs seconds under emulation). Needs only numpy, the runtime, and runtimes.py and compare.py beside it.

    python worker.py jobs.json

jobs.json: [{"runtime": a name in runtimes.RUNTIMES, "model": PATH, "precision": "fp32" | "fp16" | "int8",
             "inputs": NPZ (array "x", samples first), "batch": N, "out": NPZ}]
out: the outputs as a golden file holds them (compare.golden_arrays), plus the runtime's "info" as JSON.
Progress goes to stderr as "progress DONE TOTAL", one line per batch.
"""

import json
import platform
import sys

import numpy as np

import compare
import runtimes


def main() -> None:
    jobs = json.load(open(sys.argv[1]))
    total = sum(-(-len(np.load(job["inputs"])["x"]) // job["batch"]) for job in jobs)
    done = 0
    for job in jobs:
        # one thread each: under emulation threads do not help, processes do
        session = runtimes.load(job["runtime"], job["model"], job["precision"], threads=1)
        x = np.load(job["inputs"])["x"]
        outputs = []
        for batch in compare.batched(x, job["batch"]):
            outputs.append(session.run(np.ascontiguousarray(batch)))
            done += 1
            print(f"progress {done} {total}", file=sys.stderr, flush=True)
        info = dict(session.info)
        info.update(machine=platform.machine())
        joined = {name: np.concatenate([o[name] for o in outputs])[: len(x)] for name in outputs[0]}
        np.savez(job["out"], **compare.golden_arrays(joined), info=json.dumps(info, default=str))


if __name__ == "__main__":
    main()
