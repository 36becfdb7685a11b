#!/usr/bin/env python3
"""Run, verify and time this bundle's model on the device: numpy, Pillow and the runtime named in
manifest.json (see requirements.txt); no torch, no uninext-deploy.

    python3 run.py IMAGE [IMAGE ...]   top-5 classes of each image (a classifier), or each feature map's
                                       shape and statistics (a feature model; --save DIR writes them as .npy)
    python3 run.py --verify            checksums, then the golden inputs against PyTorch's outputs
    python3 run.py --bench             latency percentiles and throughput
    python3 run.py --verify --graph    the shipped ONNX graph on the runtime that checks it where the
                                       bundle's own cannot run (e.g. TensorRT bundles without a GPU)
    python3 run.py --infer X.bin --json   the outputs of preprocessed inputs (raw little-endian float32,
                                       samples x the input's shape) as raw float32, base64 in the JSON
                                       (what the host's `parity --device` sends and compares)

Every file's checksum is checked before anything is loaded, and with --public-key the manifest's signature
before that. Exit codes: 0 done, 1 verification failed, 2 a problem to fix (one line on stderr).
"""

from __future__ import annotations

import os
import sys

# The bundle folder is not an import path: a file planted beside run.py (numpy.py, json.py...) must never run
# in place of a library, and nothing (no __pycache__) is written into the bundle. The bundle's own modules are
# loaded by file name below: integrity and signature first, the rest only after every checksum matched.
HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != HERE]
sys.dont_write_bytecode = True

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

try:
    import numpy as np  # noqa: E402
except ImportError:  # exit 2 like every problem to fix (a traceback's 1 means a failed check)
    print("error: numpy is not installed; pip install -r requirements.txt", file=sys.stderr)
    sys.exit(2)

MACHINES = {"x86_64": "linux/x86_64", "amd64": "linux/x86_64", "aarch64": "linux/arm64", "arm64": "linux/arm64"}


def bundle_module(name: str):
    """The bundle's module ``name``.py, loaded from this folder by path (and registered for the ones after it)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


integrity = bundle_module("integrity")
signature = bundle_module("signature")
compare = runtimes = timing = state = None  # loaded by load_checked_modules(), once the checksums matched


def load_checked_modules() -> None:
    global compare, runtimes, timing, state
    compare, runtimes, timing, state = (bundle_module(name) for name in ("compare", "runtimes", "timing", "state"))


class Problem(Exception):
    """Something the user must fix; printed as one line, exit code 2."""


def open_model(manifest: dict, threads: int | None, stand_in: bool):
    """The bundle's model opened by its own runtime, or (``stand_in``) its ONNX graph by the runtime that
    checks that graph where the bundle's own runtime cannot run (manifest ``bundle.stand_in``)."""
    if stand_in:
        if manifest["bundle"].get("stand_in") is None:
            raise Problem("this bundle ships no ONNX graph; run it with its own runtime (drop --graph)")
        name, requirement = manifest["bundle"]["stand_in"]["runtime"], manifest["bundle"]["stand_in"]["requirement"]
        roles = {entry["role"] for entry in manifest["files"].values()}
        path = runtimes.file_with_role(HERE, manifest, "onnx" if "onnx" in roles else "model")
    else:
        name, requirement = manifest["backend"], manifest["bundle"]["runtime"]
        path = None
    installed, warning = runtimes.checked_version(name, requirement)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        path = path or runtimes.get(name).model_file(HERE, manifest)
        return runtimes.load(name, path, manifest["precision"], threads)
    except runtimes.RuntimeProblem:
        raise
    except Exception as exc:  # runtimes raise many types; the first line says what went wrong
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise Problem(f"{requirement['package']} {installed} could not load the model: {message}") from None


def infer(manifest: dict, run, images: list[str]) -> dict[str, np.ndarray]:
    """Every output of the model for each image, {output name: (images, ...)}."""
    imaging = bundle_module("imaging")
    arrays = []
    for name in images:
        try:
            arrays.append(imaging.preprocess(imaging.load_rgb(name), manifest["preprocessing"]))
        except (OSError, ValueError) as exc:
            raise Problem(f"cannot read image {name}: {exc}; pass a jpg/png/bmp/webp file") from None
    return compare.run_batched(run, np.stack(arrays), manifest["input"]["shape"][0])


def predictions(manifest: dict, outputs: dict, images: list[str], top: int = 5) -> list[dict]:
    """The ``top`` classes of each image from the logits."""
    labels_file = manifest["bundle"].get("labels")
    labels = (Path(HERE) / labels_file).read_text(encoding="utf-8").splitlines() if labels_file else []
    results = []
    for name, row in zip(images, outputs[compare.LOGITS].astype(np.float64)):
        probs = np.exp(row - row.max())
        probs /= probs.sum()
        best = np.argsort(-row)[:top]
        results.append({"image": name, "top": [{"class": int(i), "label": labels[i] if i < len(labels) else str(i),
                                                "probability": float(probs[i]), "logit": float(row[i])}
                                               for i in best]})
    return results


def save_outputs(outputs: dict, images: list[str], save: str) -> list[dict[str, str]]:
    """Write each image's outputs as SAVE/IMAGE.OUTPUT.npy; per image, {output name: path}."""
    folder = Path(save)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        saved = []
        for i, image in enumerate(images):
            saved.append({})
            for name, y in outputs.items():
                path = folder / f"{Path(image).stem}.{name}.npy"
                np.save(path, y[i])
                saved[-1][name] = str(path)
    except OSError as exc:
        raise Problem(f"cannot write --save {folder}: {exc.strerror}; pass a writable folder") from None
    return saved


def feature_maps(outputs: dict, images: list[str]) -> list[dict]:
    """Each image's feature maps: shape and summary statistics."""
    return [{"image": image, "features": [
        {"output": name, "shape": list(y[i].shape), "mean": float(y[i].mean()), "std": float(y[i].std()),
         "min": float(y[i].min()), "max": float(y[i].max())} for name, y in outputs.items()]}
        for i, image in enumerate(images)]


def verify(manifest: dict, run) -> dict:
    try:
        inputs, reference = compare.read_golden(HERE, manifest)
    except ValueError as exc:
        raise Problem(f"{exc}; re-bundle with `uninext-deploy bundle`") from None
    tolerance = {k: tuple(v) for k, v in manifest["bundle"]["tolerance"].items()}
    metrics, failed = compare.verdict(run, inputs, reference, manifest["input"]["shape"][0], tolerance)
    return {"passed": not failed, "failed": [miss.as_dict() for miss in failed], "metrics": metrics.as_dict(),
            "tolerance": manifest["bundle"]["tolerance"]}


def saturates(manifest: dict, info: dict) -> bool:
    """An INT8 model with 8-bit weights on a CPU whose INT8 kernels saturate on them."""
    return (manifest["precision"] == "int8" and manifest["precision_graph"].get("weight_bits", 8) == 8
            and info.get("device") == "CPU" and runtimes.int8_dot_saturates())


def bench(manifest: dict, run, warmup: int, iters: int, load_ms: float) -> dict:
    """The anchors' protocol: the model's load, its first inference and the steady state apart; percentiles
    and every timed run; peak memory; the device's state before and after, and what it warns of."""
    shape = manifest["input"]["shape"]
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    before = state.read()
    start = time.perf_counter()
    run(x)
    first_ms = (time.perf_counter() - start) * 1000.0
    times = timing.timed_runs(lambda: run(x), warmup=warmup, iters=iters)
    after = state.read()
    return {"batch": shape[0], "warmup": warmup, "load_ms": round(load_ms, 2), "first_ms": round(first_ms, 3),
            **timing.summarize(times, shape[0]).as_dict(), "times_ms": [round(t, 4) for t in times],
            "peak_rss_mb": round(timing.peak_rss_mb(), 1), "state": {"before": before, "after": after},
            "warnings": state.warnings(before, after)}


def infer_raw(manifest: dict, run, path: str) -> dict:
    """The outputs of the raw float32 inputs in ``path``: {name: {"shape", "base64"}}, raw little-endian
    float32 (data only: the host reads it with numpy's frombuffer, never a pickle)."""
    import base64

    sample = manifest["input"]["shape"][1:]
    try:
        data = np.fromfile(path, dtype="<f4")
    except OSError as exc:
        raise Problem(f"cannot read --infer {path}: {exc.strerror}") from None
    size = int(np.prod(sample))
    if data.size == 0 or data.size % size:
        raise Problem(f"--infer {path} holds {data.size} float32 values, not a whole number of inputs of shape "
                      f"{'x'.join(map(str, sample))}")
    outputs = compare.run_batched(run, data.reshape(-1, *sample), manifest["input"]["shape"][0])
    return {name: {"shape": list(y.shape), "base64": base64.b64encode(np.ascontiguousarray(y, "<f4").tobytes()).decode()}
            for name, y in outputs.items()}


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*", help="image files to classify (or extract feature maps of)")
    parser.add_argument("--save", metavar="DIR", help="save each image's outputs (feature maps or logits) as "
                                                      "DIR/IMAGE.OUTPUT.npy")
    parser.add_argument("--verify", action="store_true", help="check the golden inputs against PyTorch's outputs")
    parser.add_argument("--bench", action="store_true", help="time the model on one static-shape batch")
    parser.add_argument("--infer", metavar="RAW", help="run preprocessed inputs (raw little-endian float32, "
                                                       "samples x the input shape) and print their outputs")
    parser.add_argument("--threads", type=positive, default=None, help="CPU threads (default: the runtime's)")
    parser.add_argument("--iters", type=positive, default=100, help="--bench: timed runs")
    parser.add_argument("--warmup", type=count, default=10, help="--bench: untimed runs first")
    parser.add_argument("--graph", "--onnxruntime", dest="graph", action="store_true",
                        help="run the bundle's ONNX graph with the runtime that checks it where the bundle's own "
                             "cannot run (manifest.json bundle.stand_in) instead of the bundle's own runtime")
    parser.add_argument("--public-key", metavar="PEM", help="refuse the bundle unless manifest.json is signed by "
                                                            "this Ed25519 public key (checked before anything else)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    if not (args.images or args.verify or args.bench or args.infer):
        parser.error("pass image files, --verify, --bench or --infer")
    try:
        signer = signature.check(HERE, args.public_key) if args.public_key else None
        manifest = integrity.read_manifest(HERE)
        integrity.check_tree(HERE)
        integrity.check_files(HERE, manifest)
    except (integrity.IntegrityError, signature.SignatureError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    load_checked_modules()
    try:
        machine = MACHINES.get(platform.machine().lower(), platform.machine())
        if machine != manifest["bundle"]["platform"]:
            print(f"warning: bundle made for {manifest['bundle']['platform']}, this is {machine}", file=sys.stderr)
        start = time.perf_counter()
        session = open_model(manifest, args.threads, args.graph)
        load_ms = (time.perf_counter() - start) * 1000.0
        integrity.check_model_io(manifest, session.inputs, session.outputs)
        run = session.run
        report: dict = {"model": manifest["model"]["name"], "precision": manifest["precision"],
                        "runtime": session.info,
                        "machine": platform.machine(), "files_checked": len(manifest["files"]), "signed_by": signer}
        if args.images:
            outputs = infer(manifest, run, args.images)
            if compare.LOGITS in outputs:
                report["predictions"] = predictions(manifest, outputs, args.images)
            else:
                report["features"] = feature_maps(outputs, args.images)
            if args.save:
                report["saved"] = save_outputs(outputs, args.images, args.save)
        if args.verify:
            report["verify"] = verify(manifest, run)
            if not report["verify"]["passed"] and saturates(manifest, session.info):
                report["verify"]["remedy"] = f"{runtimes.SATURATION}: re-export with --int8-weight-bits 7"
        if args.bench:
            report["bench"] = bench(manifest, run, args.warmup, args.iters, load_ms)
        if args.infer:
            report["outputs"] = infer_raw(manifest, run, args.infer)
    except (Problem, integrity.IntegrityError, runtimes.RuntimeProblem) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the runtime's own errors while running, as the C++ runner: 2, never a check's 1
        print(f"error: {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else describe(report, manifest))
    return 1 if "verify" in report and not report["verify"]["passed"] else 0


def describe(report: dict, manifest: dict) -> str:
    info = report["runtime"]
    lines = [f"{report['model']} {report['precision']} on {info['runtime']} {info['version']} "
             f"({report['machine']}); {report['files_checked']} files match manifest.json"
             + (f", signed by key {report['signed_by']}" if report.get("signed_by") else "")]
    if manifest["model"].get("seed") is not None and report.get("predictions"):
        lines.append("note: seeded weights, not trained ones: the classes below are not meaningful")
    for item in report.get("predictions", []):
        lines.append(item["image"])
        lines += [f"  {p['probability']:7.2%}  {p['label']} ({p['class']})" for p in item["top"]]
    for item in report.get("features", []):
        lines.append(item["image"])
        lines += [f"  {f['output']:<8} {'x'.join(map(str, f['shape'])):<14} mean {f['mean']:+.4f}  std {f['std']:.4f}  "
                  f"min {f['min']:+.4f}  max {f['max']:+.4f}" for f in item["features"]]
    for paths in report.get("saved", []):
        lines.append("saved " + ", ".join(paths.values()))
    if "verify" in report:
        v, m = report["verify"], compare.Metrics.from_dict(report["verify"]["metrics"])
        tolerance = {k: tuple(b) for k, b in v["tolerance"].items()}
        failed = "; ".join(str(compare.Miss.from_dict(miss)) for miss in v["failed"])
        top1 = f", top-1 {m.top1:.2f}" if m.top1 is not None else ""
        worst = f"worst of {len(m.outputs)} outputs {m.output}: " if m.outputs else ""
        lines.append(f"verify: {'PASS' if v['passed'] else 'FAIL ' + failed} on {m.samples} golden "
                     f"inputs ({worst}cosine {m.cosine:.6f}, max abs {m.max_abs:.2e}, rel {m.rel_max_abs:.2e}{top1}; "
                     f"needs {compare.bounds_text(tolerance)})")
        if v.get("remedy"):
            lines.append(f"note: {v['remedy']}")
    if "bench" in report:
        b = report["bench"]
        lines.append(f"bench: batch {b['batch']}, {b['runs']} runs after {b['warmup']} warm-up: p50 {b['p50_ms']:.2f} ms, "
                     f"p90 {b['p90_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms, {b['throughput']:.1f} images/s; "
                     f"peak memory {b['peak_rss_mb']:.0f} MB; load {b['load_ms']:.0f} ms, first run {b['first_ms']:.1f} ms")
        lines += [f"warning: {w}" for w in b["warnings"]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
