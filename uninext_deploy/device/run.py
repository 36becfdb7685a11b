#!/usr/bin/env python3
"""Run, verify and time this bundle's model on the device: numpy, Pillow and the runtime named in
manifest.json (see requirements.txt); no torch, no uninext-deploy.

    python3 run.py IMAGE [IMAGE ...]   top-5 classes of each image
    python3 run.py --verify            checksums, then the golden inputs against PyTorch's outputs
    python3 run.py --bench             latency percentiles and throughput

Every file's checksum is checked before anything is loaded. Exit codes: 0 done, 1 verification
failed, 2 a problem to fix (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

import integrity
import parity
import runtimes

HERE = Path(__file__).resolve().parent
MACHINES = {"x86_64": "linux/x86_64", "amd64": "linux/x86_64", "aarch64": "linux/arm64", "arm64": "linux/arm64"}


class Problem(Exception):
    """Something the user must fix; printed as one line, exit code 2."""


def files_by_role(manifest: dict) -> dict[str, str]:
    return {entry["role"]: name for name, entry in manifest["files"].items()}


def model_path(manifest: dict, backend: str) -> Path:
    roles = files_by_role(manifest)
    if backend != manifest["backend"]:  # --onnxruntime: the ONNX the bundle's runtime was built from
        return HERE / (roles.get("onnx") or roles["model"])
    if backend == "trt":
        return engine_path(manifest, HERE / roles["onnx"])
    return HERE / roles["model"]


def engine_path(manifest: dict, onnx: Path) -> Path:
    """The TensorRT engine, built here on first use (engines are tied to one GPU and TensorRT version)."""
    engine = HERE / "model.engine"
    if not engine.exists():
        import build_engine

        print(f"building the TensorRT engine for this GPU (once): {engine}", file=sys.stderr)
        build_engine.build(onnx, engine, manifest["precision"], timing_cache=HERE / "timing.cache",
                           metadata={"model": manifest["model"]["name"], "input": manifest["input"]["shape"]})
    return engine


def open_model(manifest: dict, threads: int | None, onnxruntime: bool):
    backend = "ort" if onnxruntime else manifest["backend"]
    requirement = manifest["bundle"]["onnxruntime" if onnxruntime else "runtime"]
    if requirement is None:
        raise Problem("this bundle ships no ONNX graph; run it with its own runtime (drop --onnxruntime)")
    installed = runtimes.installed_version(backend)
    if installed is None:
        raise Problem(f"{requirement['package']} is not installed; pip install '{runtimes.spec(requirement)}' "
                      "(or pip install -r requirements.txt)")
    problem = runtimes.version_problem(installed, requirement)
    if problem and problem[0]:
        raise Problem(problem[1])
    if problem:
        print(f"warning: {problem[1]}", file=sys.stderr)
    try:
        return runtimes.load(backend, model_path(manifest, backend), manifest["precision"], threads)
    except Exception as exc:  # runtimes raise many types; the first line says what went wrong
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise Problem(f"{requirement['package']} {installed} could not load the model: {message}") from None


def classify(manifest: dict, run, images: list[str], top: int = 5) -> list[dict]:
    import imaging

    labels_file = manifest["bundle"].get("labels")
    labels = (HERE / labels_file).read_text().splitlines() if labels_file else []
    arrays = []
    for name in images:
        try:
            arrays.append(imaging.preprocess(imaging.load_rgb(name), manifest["preprocessing"]))
        except (OSError, ValueError) as exc:
            raise Problem(f"cannot read image {name}: {exc}; pass a jpg/png/bmp/webp file") from None
    logits = parity.run_batched(run, np.stack(arrays), manifest["input"]["shape"][0])
    results = []
    for name, row in zip(images, logits.astype(np.float64)):
        probs = np.exp(row - row.max())
        probs /= probs.sum()
        best = np.argsort(-row)[:top]
        results.append({"image": name, "top": [{"class": int(i), "label": labels[i] if i < len(labels) else str(i),
                                                "probability": float(probs[i]), "logit": float(row[i])}
                                               for i in best]})
    return results


def verify(manifest: dict, run) -> dict:
    golden = np.load(HERE / manifest["bundle"]["golden"])
    tolerance = {k: tuple(v) for k, v in manifest["bundle"]["tolerance"].items()}
    metrics, failed = parity.verdict(run, golden["inputs"], golden["outputs"], manifest["input"]["shape"][0],
                                     tolerance)
    return {"passed": not failed, "failed": failed, "metrics": metrics.as_dict(),
            "tolerance": manifest["bundle"]["tolerance"]}


def bench(manifest: dict, run, warmup: int, iters: int) -> dict:
    shape = manifest["input"]["shape"]
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    for _ in range(warmup):
        run(x)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - start) * 1000.0)
    ms = np.asarray(times)
    return {"batch": shape[0], "warmup": warmup, "iters": iters,
            **{f"p{q}_ms": float(np.percentile(ms, q)) for q in (50, 90, 99)},
            "mean_ms": float(ms.mean()), "min_ms": float(ms.min()),
            "throughput_per_s": float(shape[0] * 1000.0 / ms.mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*", help="image files to classify")
    parser.add_argument("--verify", action="store_true", help="check the golden inputs against PyTorch's outputs")
    parser.add_argument("--bench", action="store_true", help="time the model on one static-shape batch")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: the runtime's)")
    parser.add_argument("--iters", type=int, default=100, help="--bench: timed runs")
    parser.add_argument("--warmup", type=int, default=10, help="--bench: untimed runs first")
    parser.add_argument("--onnxruntime", action="store_true",
                        help="run the bundle's ONNX with ONNX Runtime instead of its own runtime")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    if not (args.images or args.verify or args.bench):
        parser.error("pass image files, --verify or --bench")
    try:
        manifest = integrity.read_manifest(HERE)
        integrity.check_files(HERE, manifest)
        machine = MACHINES.get(platform.machine().lower(), platform.machine())
        if machine != manifest["bundle"]["platform"]:
            print(f"warning: bundle made for {manifest['bundle']['platform']}, this is {machine}", file=sys.stderr)
        run, info = open_model(manifest, args.threads, args.onnxruntime)
        report: dict = {"model": manifest["model"]["name"], "precision": manifest["precision"], "runtime": info,
                        "machine": platform.machine(), "files_checked": len(manifest["files"])}
        if args.images:
            report["predictions"] = classify(manifest, run, args.images)
        if args.verify:
            report["verify"] = verify(manifest, run)
        if args.bench:
            report["bench"] = bench(manifest, run, args.warmup, args.iters)
    except (Problem, integrity.IntegrityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else describe(report, manifest))
    return 1 if "verify" in report and not report["verify"]["passed"] else 0


def describe(report: dict, manifest: dict) -> str:
    info = report["runtime"]
    lines = [f"{report['model']} {report['precision']} on {info['runtime']} {info['version']} "
             f"({report['machine']}); {report['files_checked']} files match manifest.json"]
    if manifest["model"].get("seed") is not None and report.get("predictions"):
        lines.append("note: seeded weights, not trained ones: the classes below are not meaningful")
    for item in report.get("predictions", []):
        lines.append(item["image"])
        lines += [f"  {p['probability']:7.2%}  {p['label']} ({p['class']})" for p in item["top"]]
    if "verify" in report:
        v, m = report["verify"], report["verify"]["metrics"]
        bounds = ", ".join(f"{k} {'>=' if kind == 'min' else '<='} {b:g}" for k, (b, kind) in v["tolerance"].items())
        lines.append(f"verify: {'PASS' if v['passed'] else 'FAIL ' + '; '.join(v['failed'])} on {m['samples']} golden "
                     f"inputs (cosine {m['cosine']:.6f}, max abs {m['max_abs']:.2e}, rel {m['rel_max_abs']:.2e}, "
                     f"top-1 {m['top1']:.2f}; needs {bounds})")
    if "bench" in report:
        b = report["bench"]
        lines.append(f"bench: batch {b['batch']}, {b['iters']} runs after {b['warmup']} warm-up: p50 {b['p50_ms']:.2f} ms, "
                     f"p90 {b['p90_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms, {b['throughput_per_s']:.1f} images/s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
