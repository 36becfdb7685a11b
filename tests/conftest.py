import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def _pin_this_worker() -> None:
    """Pin an xdist worker to its share of the CPUs (gw0: 0, 2, ...; gw1: 1, 3, ...) before torch and the
    runtimes start their thread pools; the processes it starts inherit it."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if worker and count and 1 < int(count) <= len(cpus):
        os.sched_setaffinity(0, set(cpus[int(worker.removeprefix("gw"))::int(count)]))


_pin_this_worker()

import numpy  # noqa: E402  (after the pinning: numpy's BLAS and torch size their thread pools when loaded)
import pytest  # noqa: E402

from uninext_deploy import api  # noqa: E402
from uninext_deploy.device.runtimes import usable_cpus  # noqa: E402
from uninext_deploy.results import OptimizeResult  # noqa: E402

# The suite runs on pytest-xdist workers (pyproject's -n auto), each pinned to its share of this machine's CPUs.
# One process with every runtime on both cores kept 2 cores 128 % busy (Python, subprocesses, qemu and the
# compilers are one thread); two workers of one core each keep both busy. Two at most: a worker peaks at 1.1 GB
# and builds its own session fixtures, and the suite's budget is 4 GB.
WORKERS = 2
# --dist worksteal: tests are handed out one by one and idle workers take queued ones, so a session or module
# fixture may be made on both workers. Keeping groups together did not work here (xdist_group markers under
# --dist loadgroup: pytest-xdist 3.8.0 ran even a seven-test project's marked tests on both workers), and
# keeping modules together (--dist loadscope) balanced worse: 458.7 s against worksteal's 431.7 s, one quiet
# fresh-clone run each.


@pytest.fixture(autouse=True)
def own_results_store(tmp_path, monkeypatch):
    """Each test its own results store (results/store.py): no test reuses another's timing, none writes the
    user's ~/.local/share."""
    monkeypatch.setenv("UNINEXT_RESULTS", str(tmp_path / "results.sqlite"))


def pytest_xdist_auto_num_workers(config):
    return min(WORKERS, usable_cpus())


def run_cli(*args: str, cwd=None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ``uninext-deploy ARGS`` in a fresh interpreter, as a user would."""
    return subprocess.run([sys.executable, "-m", "uninext_deploy", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd, env={**os.environ, "COLUMNS": "200"})


def invoke(*args: str) -> subprocess.CompletedProcess:
    """``uninext-deploy ARGS`` in this interpreter (typer's test runner): the same app, exit code and streams
    as run_cli, without the seconds a fresh interpreter spends importing torch. For errors and small runs."""
    from typer.testing import CliRunner

    from uninext_deploy.cli import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def without_vnni(command: list[str], cpu: str = "EPYC-Rome") -> list[str]:
    """``command`` (a program of this machine's) as run on qemu user mode's x86-64 CPU model ``cpu`` (its TCG
    emulates no VNNI nor AVX-512); the default, EPYC-Rome (AVX2), is a device whose INT8 kernels saturate on
    8-bit weights. Skips where it cannot. For decisions that depend on the CPU, never for timing."""
    qemu = shutil.which("qemu-x86_64-static")
    if qemu is None or os.uname().machine != "x86_64":
        pytest.skip("emulating an x86 CPU model needs qemu-x86_64-static (Debian's qemu-user-static) on x86-64")
    return [qemu, "-cpu", cpu, *command]


def on_x86_without_vnni(*command: str, cwd=None, cpu: str = "EPYC-Rome") -> subprocess.CompletedProcess:
    """``command`` run on the emulated x86 CPU ``cpu``; qemu's notes on CPU features it lacks are left out."""
    result = subprocess.run(without_vnni(list(command), cpu), cwd=cwd, capture_output=True, check=False, text=True,
                            timeout=600, stdin=subprocess.DEVNULL)
    result.stderr = "".join(line for line in result.stderr.splitlines(keepends=True)
                            if "warning: TCG doesn't support" not in line)
    return result


@pytest.fixture(scope="session")
def convmlp_s_artifact(tmp_path_factory):
    """ConvMLP-S exported once to an ORT artifact (batch 1, 224)."""
    return api.export("convmlp_s", "ort", out=tmp_path_factory.mktemp("artifacts") / "convmlp_s")


@pytest.fixture(scope="session")
def optimized(tmp_path_factory):
    """One optimize run shared by the optimize and report tests: ConvMLP-S at 96 px, ORT and OpenVINO x FP32
    and INT8, budget cosine >= 0.99, through the CLI."""
    out = tmp_path_factory.mktemp("optimize") / "convmlp_s"
    result = run_cli("optimize", "-m", "convmlp_s", "--input-size", "96", "96", "--targets", "ort,openvino",
                     "--precisions", "fp32", "--precisions", "int8", "--calib-methods", "percentile",
                     "--iters", "10", "--min-cosine", "0.99", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result.stdout, OptimizeResult.load(out / "results.json")


@pytest.fixture(scope="session")
def eight_bit_int8_bundle(tmp_path_factory):
    """ConvMLP-S INT8 at 96 px with 8-bit weights and the C++ runner, bundled on a host whose INT8 kernels do not
    saturate on them (the tests that take it skip on one that does: it refuses to bundle them)."""
    from uninext_deploy.device import runtimes

    if runtimes.int8_dot_saturates():
        pytest.skip("this host's INT8 kernels saturate on 8-bit weights, so it bundles none (test_bundle checks that)")
    return api.bundle("convmlp_s", "ort", precision="int8", input_size=96, cpp=True,
                      out=tmp_path_factory.mktemp("bundles") / "w8", int8=api.Int8Options(calib_size=8, weight_bits=8))


# What a device has: numpy, Pillow and one runtime (openvino_telemetry is imported by openvino itself), and
# cryptography for signed bundles (with cffi's backend module).
DEVICE_PACKAGES = ("numpy", "PIL", "onnxruntime", "openvino", "openvino_telemetry", "cryptography", "cffi",
                   "_cffi_backend")


@pytest.fixture(scope="session")
def torch_free_python(tmp_path_factory) -> str:
    """A fresh venv holding only numpy, Pillow, ONNX Runtime, OpenVINO and cryptography (links to this
    environment's copies): no torch and no uninext-deploy, as on a device."""
    root = tmp_path_factory.mktemp("torch-free-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = next(root.glob("lib/python*/site-packages"))
    for package in DEVICE_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec.submodule_search_locations is None:  # a plain module, such as an extension's .so
            (site / Path(spec.origin).name).symlink_to(spec.origin)
            continue
        source = Path(spec.submodule_search_locations[0])
        (site / package).symlink_to(source)
        for libs in source.parent.glob(f"{'pillow' if package == 'PIL' else package}.libs"):
            (site / libs.name).symlink_to(libs)
    python = str(root / "bin" / "python")
    for absent in ("torch", "uninext_deploy"):
        probe = subprocess.run([python, "-c", f"import {absent}"], capture_output=True, cwd=root)
        assert probe.returncode != 0, f"{absent} must not be importable in the device Python"
    return python


def edited(bundle: Path, where: Path, edit_manifest=None, files: dict[str, bytes] | None = None) -> Path:
    """A copy of ``bundle`` with ``files`` ({path in the bundle: new contents}) rewritten and their checksums
    updated, and the manifest passed through ``edit_manifest``: what someone who can edit every file makes of it."""
    from uninext_deploy.device.integrity import sha256

    shutil.copytree(bundle, where)
    manifest = json.loads((where / "manifest.json").read_text())
    for name, data in (files or {}).items():
        (where / name).write_bytes(data)
        manifest["files"][name].update(bytes=len(data), sha256=sha256(where / name))
    if edit_manifest:
        edit_manifest(manifest)
    (where / "manifest.json").write_text(json.dumps(manifest))
    return where


def png_header_only(path, width: int, height: int) -> None:
    """A PNG that claims ``width`` x ``height`` pixels and holds none: a decompression bomb's header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.fixture(scope="session")
def photo_zoo(tmp_path_factory):
    """One shipped photo in every form a user's folder holds, plus a bomb and a broken file; (folder, photo)."""
    from PIL import Image

    from uninext_deploy.device.imaging import load_rgb
    from uninext_deploy.images import find_images

    folder = tmp_path_factory.mktemp("zoo")
    photo = load_rgb(find_images()[0]).resize((160, 120))
    photo.convert("L").save(folder / "gray.png")
    photo.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    rgba = photo.convert("RGBA")
    rgba.putalpha(200)
    rgba.save(folder / "rgba.png")
    rgba.save(folder / "rgba.webp", quality=90)
    photo.convert("P", palette=Image.ADAPTIVE).save(folder / "palette.png", transparency=0)
    Image.fromarray((numpy.asarray(photo.convert("L"), numpy.uint16) * 257)).save(folder / "gray16.png")
    photo.save(folder / "photo.webp", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the stored pixels are rotated 90 degrees clockwise to show upright
    photo.transpose(Image.Transpose.ROTATE_90).save(folder / "rotated.JPG", quality=95, exif=exif)
    photo.resize((12, 9)).save(folder / "tiny.PNG")
    png_header_only(folder / "bomb.png", 12000, 9000)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    return folder, photo
