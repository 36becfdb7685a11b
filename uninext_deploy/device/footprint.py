#!/usr/bin/env python3
"""Peak resident memory of one model run by its runtime, in a process of its own: numpy, the runtime and
``runtimes.py`` beside this file, nothing else loaded (what the device's process holds, not the host tool's
torch and friends).

    python footprint.py RUNTIME MODEL_FILE PRECISION THREADS N,C,H,W [RUNS]

Prints JSON: ``runtime_mb`` (peak after importing the runtime) and ``peak_mb`` (peak after loading the model
and RUNS runs on one batch), both the process's resident high-water mark.
"""

import importlib
import json
import sys

import numpy as np

import runtimes
from timing import peak_rss_mb


def main() -> None:
    name, path, precision, threads, shape = sys.argv[1:6]
    runs = int(sys.argv[6]) if len(sys.argv) > 6 else 3
    importlib.import_module(runtimes.get(name).module)
    after_import = peak_rss_mb()
    session = runtimes.load(name, path, precision, int(threads) or None)
    x = np.zeros([int(d) for d in shape.split(",")], np.float32)
    for _ in range(runs):
        session.run(x)
    print(json.dumps({"runtime_mb": round(after_import, 1), "peak_mb": round(peak_rss_mb(), 1)}))


if __name__ == "__main__":
    main()
