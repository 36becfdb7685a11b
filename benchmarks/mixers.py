"""UniNeXt's token mixers per GMAC: every UniNeXt-T variant's artifact, timed in one interleaved run.

    python benchmarks/mixers.py                              # ORT and OpenVINO FP32, every UniNeXt-T mixer
    python benchmarks/mixers.py --targets ort --models uninext_t uninext_t_cswin --rounds 10
    python benchmarks/mixers.py --split                      # and where the time goes: attention or the rest

The variants share the macro architecture and differ only in the spatial mixer, so speed per multiply-accumulate
(the model's MACs, attention included, over p50) says how well a runtime runs each mixer's graph. Per target
(batch 1, --threads 2): p50, GMACs, GMAC/s and GMAC/s relative to the local-window model. The models are timed in
--rounds rounds of turns (order reversed every other round); the ratio is the median of the rounds' own ratios,
with their lowest and highest, so that the machine's drift between rounds (10-30 % on this shared machine) does
not land on one model: p50s over the whole run moved a 1-2 % gap either way from one run to the next.

--split adds, from the runtime's per-layer profile (ORT's trace, OpenVINO's counters; --split-rounds profiles per
model, alternating, medians), the attention's MatMul/Softmax time and the rest's, each with its MACs (attention:
torch's batched-matmul count) and rate, and a ceiling: the model's GMAC/s relative to the window model if all but
its attention ran at the window model's rate. A mixer whose ceiling is below 1x cannot match the window model per
GMAC by trimming its layout ops: its attention MACs themselves run slower than the model's average. The layers
column counts the layers the runtime executed (after its fusions): the per-layer times leave out what the runtime
spends between layers, which grows with their number (OpenVINO, UniNeXt-T at 2 threads: wall time less the sum of
the counters 7.4 ms over 530 layers for the window model, 8.1 ms over 704 for the cross-shaped one).
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

import numpy as np

from uninext_deploy import api
from uninext_deploy.device.timing import race
from uninext_deploy.models import count_attention_macs, count_macs
from uninext_deploy.parity import runner_for

WINDOW = "uninext_t"  # the reference every ratio is taken against
MODELS = (WINDOW, "uninext_t_cswin", "uninext_t_pvt", "uninext_t_dwconv", "uninext_t_pool")
# attention's own layers after the runtimes' fusions: ORT's (Fused)MatMul and Softmax, OpenVINO's fused MHA Subgraph
ATTENTION_LAYER = re.compile(r"/attns?(\.\d+)?/(MatMul|Softmax)")
ATTENTION_OPS = {"MatMul", "FusedMatMul", "Softmax", "Subgraph"}


def race_by_round(runners: dict, x: np.ndarray, iters: int, rounds: int) -> dict:
    """model -> its p50 ms in each round; a round times every model in turn (timing.race), ``iters`` runs each."""
    p50 = {name: [] for name in runners}
    for turn in range(rounds):
        order = list(runners) if turn % 2 == 0 else list(reversed(runners))
        latency = race({name: lambda runner=runners[name]: runner.run(x) for name in order}, batch=1, warmup=1,
                       iters=iters, rounds=1)
        for name in order:
            p50[name].append(latency[name].p50_ms)
    return p50


def split_ms(runners: dict, x: np.ndarray, rounds: int) -> dict:
    """model -> (attention ms, rest ms, layers executed): medians over ``rounds`` per-layer profiles, in turns."""
    samples = {name: [] for name in runners}
    for _ in range(rounds):
        for name, runner in runners.items():
            layers = runner.per_layer_profile(x, runs=20)
            attention = sum(e["ms"] for e in layers if e["op"] in ATTENTION_OPS and ATTENTION_LAYER.search(e["name"]))
            samples[name].append((attention, sum(e["ms"] for e in layers) - attention, len(layers)))
    return {name: tuple(np.median(np.array(s), axis=0)) for name, s in samples.items()}


def print_split(split: dict, macs: dict, attention: dict) -> None:
    print(f"{'model':<18} {'attn ms':>8} {'GMACs':>6} {'GMAC/s':>7} {'rest ms':>8} {'GMACs':>6} {'GMAC/s':>7} "
          f"{'ceiling':>8} {'layers':>7}")
    window_ms = sum(split[WINDOW][:2]) if WINDOW in split else None  # its attention and rest, not its layers
    for name, (attn_ms, rest_ms, layers) in split.items():
        if not attn_ms:  # e.g. OpenVINO names PVT's fused attention after the transpose it absorbed
            print(f"{name:<18} {'n/a: no attention layer found by name':>60}")
            continue
        rest_macs = macs[name] - attention[name]
        ceiling = ""
        if window_ms:
            # all but attention at the window model's rate, against the window model's whole rate
            rest_at_window = split[WINDOW][1] * rest_macs / (macs[WINDOW] - attention[WINDOW])
            ceiling = f"{macs[name] / (attn_ms + rest_at_window) / (macs[WINDOW] / window_ms):7.3f}x"
        print(f"{name:<18} {attn_ms:8.2f} {attention[name] / 1e9:6.3f} {attention[name] / 1e6 / attn_ms:7.1f} "
              f"{rest_ms:8.2f} {rest_macs / 1e9:6.3f} {rest_macs / 1e6 / rest_ms:7.1f} {ceiling:>8} {layers:7.0f}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--targets", nargs="*", default=["ort", "openvino"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iters", type=int, default=200, help="runs per model, spread over the rounds")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--split", action="store_true", help="also profile attention against the rest")
    parser.add_argument("--split-rounds", type=int, default=3)
    args = parser.parse_args()

    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    macs = {name: count_macs(name) for name in args.models}
    attention = {name: count_attention_macs(name) for name in args.models} if args.split else {}
    with tempfile.TemporaryDirectory(prefix="uninext-mixers-") as tmp:
        for target in args.targets:
            runners = {name: runner_for(api.export(name, target, out=Path(tmp) / f"{target}-{name}"), args.threads,
                                        timing=True) for name in args.models}
            p50 = race_by_round(runners, x, max(1, args.iters // args.rounds), args.rounds)
            rate = {name: macs[name] / 1e6 / np.array(p50[name]) for name in args.models}  # GMAC/s per round
            base = rate.get(WINDOW)
            print(f"\n{target} FP32, batch 1, {args.threads} threads, {args.iters} runs in {args.rounds} rounds")
            print(f"{'model':<18} {'p50 ms':>8} {'GMACs':>7} {'GMAC/s':>7} {'vs window':>10} {'rounds: low-high':>17}")
            for name in args.models:
                relative = ""
                if base is not None:
                    ratio = rate[name] / base
                    relative = f"{np.median(ratio):9.3f}x {ratio.min():8.3f}-{ratio.max():.3f}"
                print(f"{name:<18} {np.median(p50[name]):8.2f} {macs[name] / 1e9:7.3f} {np.median(rate[name]):7.1f} "
                      f"{relative}", flush=True)
            if args.split:
                print(f"\n{target}: attention against the rest, per-layer profile, medians of {args.split_rounds}")
                print_split(split_ms(runners, x, args.split_rounds), macs, attention)


if __name__ == "__main__":
    main()
