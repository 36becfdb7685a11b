"""UniNeXt's token mixers per GMAC: every UniNeXt-T variant's artifact, timed in one interleaved run.

    python benchmarks/mixers.py                              # ORT and OpenVINO FP32, every UniNeXt-T mixer
    python benchmarks/mixers.py --targets ort --models uninext_t uninext_t_cswin --rounds 10

The variants share the macro architecture and differ only in the spatial mixer, so speed per multiply-accumulate
(the model's MACs, attention included, over p50) says how well a runtime runs each mixer's graph. Per target
(batch 1, --threads 2): p50, GMACs, GMAC/s and GMAC/s relative to the local-window model. Read the ratios inside
one table: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from uninext_deploy import api
from uninext_deploy.device.timing import race
from uninext_deploy.models import count_macs
from uninext_deploy.parity import runner_for

MODELS = ("uninext_t", "uninext_t_cswin", "uninext_t_pvt", "uninext_t_dwconv", "uninext_t_pool")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--targets", nargs="*", default=["ort", "openvino"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()

    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    macs = {name: count_macs(name) for name in args.models}
    with tempfile.TemporaryDirectory(prefix="uninext-mixers-") as tmp:
        for target in args.targets:
            runners = {}
            for name in args.models:
                artifact = api.export(name, target, out=Path(tmp) / f"{target}-{name}")
                runner = runner_for(artifact, args.threads, timing=True)
                runners[name] = lambda runner=runner: runner.run(x)
            latency = race(runners, batch=1, warmup=5, iters=args.iters, rounds=args.rounds)
            rate = {name: macs[name] / 1e6 / latency[name].p50_ms for name in args.models}
            base = rate.get("uninext_t")
            print(f"\n{target} FP32, batch 1, {args.threads} threads, {args.iters} runs in {args.rounds} rounds")
            print(f"{'model':<18} {'p50 ms':>8} {'GMACs':>7} {'GMAC/s':>7} {'vs window':>10}")
            for name in args.models:
                relative = f"{rate[name] / base:9.3f}x" if base else ""
                print(f"{name:<18} {latency[name].p50_ms:8.2f} {macs[name] / 1e9:7.3f} {rate[name]:7.1f} {relative:>10}",
                      flush=True)


if __name__ == "__main__":
    main()
