"""Bundles end to end: built by the CLI, unpacked into a fresh folder, verified by a Python without torch
and on the emulated aarch64 CPU; tampered bundles and hostile archives refused."""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import edited, invoke, on_x86_without_vnni, run_cli, without_vnni
from uninext_deploy import api
from uninext_deploy.archive import extract
from uninext_deploy.device import runtimes
from uninext_deploy.device.imaging import load_rgb, preprocess
from uninext_deploy.errors import ParityFailure, UserError
from uninext_deploy.images import SHIPPED_IMAGES
from uninext_deploy.models import create_model

ARM = pytest.mark.skipif(shutil.which("apt-get") is None and shutil.which("qemu-aarch64-static") is None,
                         reason="ARM emulation set-up needs apt (Debian/Ubuntu) or qemu-user-static")


@pytest.fixture(scope="module")
def fp32_bundle(tmp_path_factory):
    """ConvMLP-S ORT FP32 at 64 px, bundled by the CLI into ./bundles/; returns (folder, CLI output)."""
    cwd = tmp_path_factory.mktemp("user")
    result = run_cli("bundle", "-m", "convmlp_s", "--input-size", "64", "64", cwd=cwd)
    assert result.returncode == 0, result.stderr
    (out,) = [p for p in (cwd / "bundles").iterdir() if p.is_dir()]
    assert out.name == "convmlp_s-ort-fp32-b1-64x64-linux-x86_64"
    return out, result.stdout


@pytest.fixture(scope="module")
def int8_arm_bundle(tmp_path_factory):
    """ConvMLP-S ORT INT8 at 96 px for linux/arm64: golden-checked under emulation before it is written."""
    if shutil.which("apt-get") is None and shutil.which("qemu-aarch64-static") is None:
        pytest.skip("ARM emulation set-up needs apt (Debian/Ubuntu) or qemu-user-static")
    return api.bundle("convmlp_s", "ort", precision="int8", input_size=96, platform=api.PlatformOptions("linux/arm64"),
                      out=tmp_path_factory.mktemp("bundles") / "convmlp_s-int8-arm").path


def unpack(archive: Path, where: Path) -> Path:
    """The archive unpacked by the system's tar into a fresh folder, as a user would on the device."""
    where.mkdir()
    subprocess.run(["tar", "xzf", str(archive), "-C", str(where)], check=True)
    (folder,) = where.iterdir()
    return folder


def device_run(python: str, folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, "run.py", *args], cwd=folder, capture_output=True, text=True, timeout=600)


def test_bundle_holds_what_the_device_needs_with_checksums_and_sizes(fp32_bundle):
    folder, stdout = fp32_bundle
    archive = folder.with_name(folder.name + ".tar.gz")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) | {"manifest.json"} == {p.relative_to(folder).as_posix() for p in folder.rglob("*")
                                                          if p.is_file()}
    assert {"model.onnx", "golden/inputs.bin", "golden/outputs.logits.bin", "run.py", "runtimes.py", "imaging.py",
            "compare.py", "timing.py", "integrity.py", "labels.txt", "requirements.txt", "README.md"} <= set(manifest["files"])
    assert manifest["model"]["family"] == "convmlp" and manifest["input"]["shape"] == [1, 3, 64, 64]
    assert manifest["preprocessing"]["crop"] == [64, 64] and manifest["preprocessing"]["color"] == "RGB"
    b = manifest["bundle"]
    assert b["platform"] == "linux/x86_64" and b["runtime"]["package"] == "onnxruntime"
    assert b["runtime"]["min"] == "1.17" and b["runtime"]["below"] == "2"  # opset 20 (ORT 1.16.3 refuses it)
    assert b["parity"]["passed"] and b["parity"]["photos"]["samples"] == 10
    assert b["verified"]["linux/x86_64"]["passed"] and manifest["schema"] == 3 and manifest["tool_version"]
    # the host check ran the bundle's own run.py, and a stand-in is declared for its ONNX graph
    assert b["verified"]["linux/x86_64"]["runner"].startswith("run.py: onnxruntime ")
    assert b["stand_in"]["runtime"] == "ort" and b["stand_in"]["requirement"] == b["runtime"]
    assert len((folder / "labels.txt").read_text().splitlines()) == 1000
    assert "onnxruntime>=1.17,<2" in (folder / "requirements.txt").read_text().splitlines()
    total = sum(e["bytes"] for e in manifest["files"].values())
    assert f"{total / 1e6:.3f}" in stdout and archive.name in stdout and "model.onnx" in stdout
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    assert {Path(m.name).parts[0] for m in members} == {folder.name}
    assert all(m.uid == 0 and m.uname == "" for m in members)
    assert sorted(Path(*Path(m.name).parts[1:]).as_posix() for m in members if m.isfile()) == sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_verify_defaults_to_the_newest_bundle(fp32_bundle, tmp_path):
    result = run_cli("verify", cwd=fp32_bundle[0].parent.parent)
    assert result.returncode == 0 and "golden: PASS on 4 inputs" in result.stdout, result.stderr
    result = run_cli("verify", cwd=tmp_path)
    assert result.returncode == 2 and "none in bundles/" in result.stderr


def test_unpacked_bundle_runs_on_a_python_without_torch(fp32_bundle, torch_free_python, tmp_path):
    folder = unpack(fp32_bundle[0].with_name(fp32_bundle[0].name + ".tar.gz"), tmp_path / "device")
    verified = device_run(torch_free_python, folder, "--verify", "--json")
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    host = json.loads((folder / "manifest.json").read_text())["bundle"]["verified"]["linux/x86_64"]
    assert report["verify"]["passed"] and report["runtime"]["runtime"] == "onnxruntime"
    assert report["verify"]["metrics"]["max_abs"] == pytest.approx(host["metrics"]["max_abs"], rel=1e-6)

    photo = SHIPPED_IMAGES / "chelsea_cat.jpg"
    classified = device_run(torch_free_python, folder, str(photo), "--json")
    assert classified.returncode == 0, classified.stderr
    top = [p["class"] for p in json.loads(classified.stdout)["predictions"][0]["top"]]
    model = create_model("convmlp_s", input_size=64)
    pre = json.loads((folder / "manifest.json").read_text())["preprocessing"]
    with torch.inference_mode():
        logits = model(torch.from_numpy(preprocess(load_rgb(photo), pre))[None]).numpy()[0]
    assert top == list(np.argsort(-logits)[:5])

    timed = device_run(torch_free_python, folder, "--bench", "--iters", "5", "--warmup", "1")
    assert timed.returncode == 0 and "p50" in timed.stdout and "images/s" in timed.stdout, timed.stderr
    assert "peak memory" in timed.stdout  # of the device process: numpy, the runtime and the model


def test_int8_bundle_verified_on_emulated_aarch64_and_without_torch(int8_arm_bundle, torch_free_python, tmp_path):
    manifest = json.loads((int8_arm_bundle / "manifest.json").read_text())
    arm = manifest["bundle"]["verified"]["linux/arm64"]
    assert arm["passed"] and "aarch64 cortex-a76" in arm["runner"] and manifest["precision"] == "int8"
    assert manifest["bundle"]["tolerance"] == {"cosine": [0.99, "min"]}
    folder = unpack(int8_arm_bundle.with_name(int8_arm_bundle.name + ".tar.gz"), tmp_path / "device")
    result = device_run(torch_free_python, folder, "--verify")
    assert result.returncode == 0 and "verify: PASS" in result.stdout, result.stdout + result.stderr
    assert "made for linux/arm64" in result.stderr  # the x86 run says it is not the bundle's platform


def test_int8_bundle_on_an_x86_cpu_without_vnni(tmp_path, monkeypatch, request):
    """An x86 CPU without VNNI (qemu's EPYC-Rome) saturates INT8 dot products on 8-bit weights: the bundle's
    run.py --verify fails there and names the fix, and so does `verify` (a host like it refuses to bundle them,
    naming it too); the bundle with 7-bit weights passes there."""
    seven = api.bundle("convmlp_s", "ort", precision="int8", input_size=96, out=tmp_path / "w7",
                       int8=api.Int8Options(calib_size=8, weight_bits=7)).path
    assert json.loads((seven / "manifest.json").read_text())["precision_graph"]["weight_bits"] == 7
    passed = on_x86_without_vnni(sys.executable, "run.py", "--verify", cwd=seven)
    assert passed.returncode == 0 and "verify: PASS" in passed.stdout, passed.stdout + passed.stderr
    if runtimes.int8_dot_saturates():
        with pytest.raises(ParityFailure, match="to try: --int8-weight-bits 7 .this x86 CPU has no VNNI"):
            api.bundle("convmlp_s", "ort", precision="int8", input_size=96, out=tmp_path / "w8",
                       int8=api.Int8Options(calib_size=8, weight_bits=8))
        return
    eight = request.getfixturevalue("eight_bit_int8_bundle").path
    failed = on_x86_without_vnni(sys.executable, "run.py", "--verify", cwd=eight)
    remedy = "this x86 CPU has no VNNI: its INT8 kernels saturate on 8-bit weights: re-export with --int8-weight-bits 7"
    assert failed.returncode == 1 and "verify: FAIL" in failed.stdout, failed.stdout + failed.stderr
    assert f"note: {remedy}" in failed.stdout
    run = subprocess.run  # `verify` runs the bundle's run.py there too
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: run(without_vnni(command), **kwargs))
    report = api.verify(eight)
    assert not report.passed and report.remedy == remedy


@ARM
def test_fp32_bundle_verified_on_emulated_aarch64(fp32_bundle):
    archive = fp32_bundle[0].with_name(fp32_bundle[0].name + ".tar.gz")
    result = run_cli("verify", str(archive), "--platform", "linux/arm64")
    assert result.returncode == 0, result.stderr
    files = len(json.loads((fp32_bundle[0] / "manifest.json").read_text())["files"])
    assert "PASS" in result.stdout and "emulated aarch64" in result.stdout
    assert f"integrity: {files} files match" in result.stdout


def test_tampered_or_incomplete_bundle_is_one_clear_error(fp32_bundle, torch_free_python, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(fp32_bundle[0], folder)
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    result = run_cli("verify", str(folder))
    assert result.returncode == 2 and "model.onnx does not match its sha256" in result.stderr
    assert [line for line in result.stderr.splitlines() if not line.startswith("[")] == [
        line for line in result.stderr.splitlines() if line.startswith("error:")] and "error:" in result.stderr
    on_device = device_run(torch_free_python, folder, "--verify")
    assert on_device.returncode == 2 and "model.onnx does not match its sha256" in on_device.stderr

    (folder / "golden/inputs.bin").unlink()
    shutil.copyfile(fp32_bundle[0] / "model.onnx", folder / "model.onnx")
    on_device = device_run(torch_free_python, folder, "photo.jpg")
    assert on_device.returncode == 2 and "golden/inputs.bin is missing" in on_device.stderr

    archive = tmp_path / "tampered.tar.gz"
    (folder / "golden/inputs.bin").write_bytes(b"not the golden file")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="bundle")
    result = run_cli("verify", str(archive))
    assert result.returncode == 2 and "golden/inputs.bin has 19 bytes" in result.stderr


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    return api.bundle("test_convmlp", "ort", out=tmp_path_factory.mktemp("tiny") / "bundle").path


def refused(python: str, folder: Path, words: str, host: bool = True) -> None:
    """run.py --verify (and, with ``host``, `uninext-deploy verify`) ends with one line holding ``words``, exit 2."""
    on_device = device_run(python, folder, "--verify")
    assert on_device.returncode == 2 and words in on_device.stderr, on_device.stderr
    assert len(on_device.stderr.splitlines()) == 1, on_device.stderr
    if host:
        result = run_cli("verify", str(folder))
        assert result.returncode == 2 and words in result.stderr, result.stderr


def test_run_py_without_numpy_is_a_problem_to_fix_not_a_failed_check(tiny_bundle, tmp_path):
    """Exit 2 and one line, as the bundle README says, not a traceback's 1, which means outputs off the golden ones."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    result = device_run(str(bare / "bin" / "python"), tiny_bundle, "--verify")
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "error: numpy is not installed; pip install -r requirements.txt"], result.stderr
    assert "1 the golden check failed" in (tiny_bundle / "README.md").read_text()


def test_bundle_folder_gets_the_scrutiny_of_an_archive(tiny_bundle, torch_free_python, tmp_path):
    planted = edited(tiny_bundle, tmp_path / "planted")  # a numpy.py beside run.py must not run in numpy's place
    (planted / "numpy.py").write_text("open('PWNED', 'w').close()\nraise SystemExit(7)\n")
    passed = device_run(torch_free_python, planted, "--verify")
    assert passed.returncode == 0, passed.stderr
    assert not (planted / "PWNED").exists() and not (planted / "__pycache__").exists()

    outside = edited(tiny_bundle, tmp_path / "outside")
    (outside / "notes.txt").symlink_to("/etc/hostname")
    refused(torch_free_python, outside, "notes.txt is a link to /etc/hostname, outside the bundle")
    climbing = edited(tiny_bundle, tmp_path / "climbing")
    (climbing / "golden/up").symlink_to("../../..")
    refused(torch_free_python, climbing, "golden/up is a link to ../../.., outside the bundle")
    fifo = edited(tiny_bundle, tmp_path / "fifo")
    os.mkfifo(fifo / "pipe")
    refused(torch_free_python, fifo, "pipe is a device, FIFO or other special file")

    linked = edited(tiny_bundle, tmp_path / "linked")  # a listed file must be the file, not a link (even inside)
    (linked / "labels.copy").write_bytes((linked / "labels.txt").read_bytes())
    (linked / "labels.txt").unlink()
    (linked / "labels.txt").symlink_to("labels.copy")
    refused(torch_free_python, linked, "labels.txt is a link, not a plain file")
    escaping = edited(tiny_bundle, tmp_path / "escaping",
                      lambda m: m["files"].update({"../x": {"bytes": 1, "sha256": "0", "role": "doc"}}))
    refused(torch_free_python, escaping, "manifest.json lists '../x', which is not a file inside the bundle")


def test_golden_data_that_is_not_plain_arrays_is_refused(tiny_bundle, torch_free_python, tmp_path):
    golden = json.loads((tiny_bundle / "manifest.json").read_text())["bundle"]["golden"]
    shape = golden["inputs"]["shape"]
    x = np.fromfile(tiny_bundle / "golden/inputs.bin", dtype="<f4")
    nan = x.copy()
    nan[5] = np.nan
    refused(torch_free_python, edited(tiny_bundle, tmp_path / "nan", files={"golden/inputs.bin": nan.tobytes()}),
            "golden golden/inputs.bin holds NaN or Inf values")
    refused(torch_free_python, edited(tiny_bundle, tmp_path / "short", files={"golden/inputs.bin": x[:-3].tobytes()}),
            f"golden golden/inputs.bin has {x.nbytes - 12} bytes, its shape {shape} needs {x.nbytes}")

    def as_float64(m):
        m["bundle"]["golden"]["inputs"]["dtype"] = "float64"

    def negative(m):
        m["bundle"]["golden"]["inputs"]["shape"] = [-1, *shape[1:]]

    def other_size(m):
        m["bundle"]["golden"]["inputs"]["shape"] = [shape[0], 3, 8, shape[3] * shape[2] // 8]

    def object_array(m):
        m["bundle"]["golden"]["outputs"]["logits"]["dtype"] = "object"

    def renamed(m):
        m["bundle"]["golden"]["outputs"] = {"scores": m["bundle"]["golden"]["outputs"]["logits"]}

    for edit, words in ((as_float64, "golden golden/inputs.bin is float64, not float32"),
                        (negative, f"golden golden/inputs.bin has shape [-1, {', '.join(map(str, shape[1:]))}], not "
                                   "a list of positive sizes"),
                        (other_size, "golden golden/inputs.bin has shape"),
                        (object_array, "golden golden/outputs.logits.bin is object, not float32"),
                        (renamed, "golden outputs scores are not the model's logits")):
        refused(torch_free_python, edited(tiny_bundle, tmp_path / edit.__name__, edit), words, host=False)


def test_manifest_must_describe_the_model_it_ships(tiny_bundle, torch_free_python, tmp_path):
    def input_name(m):
        m["input"]["name"] = "image"

    def output_shape(m):
        m["outputs"][0]["shape"] = [1, 10]

    def input_dtype(m):
        m["input"]["dtype"] = "float16"

    shape = "x".join(map(str, json.loads((tiny_bundle / "manifest.json").read_text())["input"]["shape"]))
    classes = json.loads((tiny_bundle / "manifest.json").read_text())["outputs"][0]["shape"][1]
    for edit, words in ((input_name, "the model's inputs are input, manifest.json says image"),
                        (output_shape, f"the model's output logits is float32 1x{classes}, manifest.json says "
                                       "float32 1x10"),
                        (input_dtype, f"the model's input input is float32 {shape}, manifest.json says float16")):
        refused(torch_free_python, edited(tiny_bundle, tmp_path / edit.__name__, edit), words, host=False)


def test_photos_in_every_form_on_host_and_device(tiny_bundle, photo_zoo, torch_free_python, tmp_path):
    folder, _ = photo_zoo
    parity = run_cli("parity", "-m", "test_convmlp", "--images", str(folder), "--random-inputs", "1", cwd=tmp_path)
    assert parity.returncode == 0 and "skipped 2 unreadable image(s): bomb.png" in parity.stderr, parity.stderr
    export = run_cli("export", "-m", "test_convmlp", "--int8", "--calib", str(folder), "-o",
                     str(tmp_path / "int8"), cwd=tmp_path)
    assert export.returncode == 0 and "broken.jpg (cannot identify" in export.stderr, export.stderr

    good = sorted(p.name for p in folder.iterdir() if p.name not in ("bomb.png", "broken.jpg"))
    on_device = device_run(torch_free_python, tiny_bundle, *(str(folder / name) for name in good), "--json")
    assert on_device.returncode == 0, on_device.stderr
    logits = {Path(item["image"]).name: item["top"][0]["logit"] for item in json.loads(on_device.stdout)["predictions"]}
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tiny_bundle / "model.onnx"))
    pre = json.loads((tiny_bundle / "manifest.json").read_text())["preprocessing"]
    for name in good:  # the device converts each photo as the host does
        x = preprocess(load_rgb(folder / name), pre)[None]
        assert abs(session.run(None, {"input": x})[0].max() - logits[name]) < 1e-4, name
    bomb = device_run(torch_free_python, tiny_bundle, str(folder / "bomb.png"))
    assert bomb.returncode == 2 and bomb.stderr.splitlines() == [
        f"error: cannot read image {folder / 'bomb.png'}: Image size (108000000 pixels) exceeds limit of 89478485 "
        "pixels (a decompression bomb?); pass a jpg/png/bmp/webp file"]


def hostile_archive(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def entry(name: str, kind=tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize("members, reason", [
    ([entry("bundle/manifest.json"), entry("bundle/../../escaped.txt")], "climbs out with '..'"),
    ([entry("/tmp/escaped.txt")], "has an absolute path"),
    ([entry("bundle/run.py"), entry("bundle/link", tarfile.SYMTYPE, "../../escaped.txt")], "is a link to"),
    ([entry("bundle/link", tarfile.SYMTYPE, "/etc/passwd")], "is a link to /etc/passwd"),
    ([entry("bundle/hard", tarfile.LNKTYPE, "../outside")], "is a link to"),
    ([entry("bundle/fifo", tarfile.FIFOTYPE)], "special file"),
    ([entry("one/a"), entry("two/b")], "exactly one folder"),
])
def test_hostile_archives_are_refused_before_anything_is_written(tmp_path, members, reason):
    archive = hostile_archive(tmp_path / "hostile.tar.gz", *members)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UserError, match=reason):
        extract(archive, dest)
    assert not any(dest.iterdir()) and not (tmp_path / "escaped.txt").exists()
    result = run_cli("verify", str(archive))
    assert result.returncode == 2 and "refusing" in result.stderr


def test_not_an_archive_and_not_a_bundle(tmp_path, convmlp_s_artifact):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b garbage")
    assert "cannot read" in run_cli("verify", str(junk)).stderr
    assert "is an artifact, not a bundle" in run_cli("verify", str(convmlp_s_artifact.path)).stderr
    assert "does not exist" in run_cli("verify", str(tmp_path / "missing")).stderr
    # an archive of an artifact (no bundle): the error names the archive passed, not the folder it was unpacked in
    with tarfile.open(tmp_path / "artifact.tar.gz", "w:gz") as tar:
        tar.add(convmlp_s_artifact.path, arcname="artifact")
    said = run_cli("verify", str(tmp_path / "artifact.tar.gz")).stderr
    assert f"{tmp_path / 'artifact.tar.gz'} (unpacked) is an artifact, not a bundle" in said and "uninext-verify-" not in said


def test_interrupted_bundle_leaves_nothing_behind(tmp_path, monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("uninext_deploy.bundle.write_archive", interrupt)
    with pytest.raises(KeyboardInterrupt):
        api.bundle("test_convmlp", out=tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_signed_bundle_is_checked_before_anything_on_host_and_device(tmp_path, torch_free_python):
    private, public, fingerprint = api.keygen(tmp_path / "keys")
    made = api.bundle("test_convmlp", "ort", sign_key=private, out=tmp_path / "signed")
    assert made.manifest["bundle"]["signed_by"] == fingerprint and (made.path / "manifest.json.sig").is_file()
    assert "cryptography" in (made.path / "requirements.txt").read_text()
    assert f"Signed (Ed25519, key {fingerprint})" in (made.path / "README.md").read_text()
    result = run_cli("verify", str(made.archive), "--public-key", str(public))
    assert result.returncode == 0 and f"signature: manifest.json signed by key {fingerprint}" in result.stdout
    folder = unpack(made.archive, tmp_path / "device")
    on_device = device_run(torch_free_python, folder, "--verify", "--public-key", str(public))
    assert on_device.returncode == 0 and f"signed by key {fingerprint}" in on_device.stdout, on_device.stderr

    _, other, _ = api.keygen(tmp_path / "other")
    for where in (folder, made.archive):  # another key: refused on host and device, one line, exit 2
        result = run_cli("verify", str(where), "--public-key", str(other))
        assert result.returncode == 2 and "signature check failed: manifest.json is not signed by the key" in result.stderr
    refused = device_run(torch_free_python, folder, "--verify", "--public-key", str(other))
    assert refused.returncode == 2 and refused.stderr.startswith("error: manifest.json is not signed by the key")
    assert len(refused.stderr.splitlines()) == 1

    manifest = json.loads((folder / "manifest.json").read_text())  # a loosened tolerance, checksums left intact
    manifest["bundle"]["tolerance"] = {"cosine": [0.5, "min"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    refused = device_run(torch_free_python, folder, "--verify", "--public-key", str(public))
    assert refused.returncode == 2 and "manifest.json is not signed by the key" in refused.stderr
    assert device_run(torch_free_python, folder, "--verify").returncode == 0  # no key asked for: not checked

    unsigned = api.bundle("test_convmlp", "ort", out=tmp_path / "unsigned")
    assert unsigned.manifest["bundle"]["signed_by"] is None
    assert run_cli("verify", str(unsigned.path)).returncode == 0
    result = run_cli("verify", str(unsigned.path), "--public-key", str(public))
    assert result.returncode == 2 and "is not signed (no manifest.json.sig) but a public key was given" in result.stderr
    with pytest.raises(UserError, match="--sign-key: .*is not a PEM private key"):
        api.bundle("test_convmlp", "ort", sign_key=public, out=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_tensorrt_bundle_ships_onnx_and_build_scripts_and_verifies_the_graph(tmp_path, torch_free_python):
    """No GPU here: the bundle carries what builds the engine on the device, and its ONNX is verified
    with ONNX Runtime (said so); the engine itself is checked where TensorRT exists."""
    result = api.bundle("test_convmlp", "trt", out=tmp_path / "trt")
    files = result.manifest["files"]
    assert {"model.onnx", "build_engine.py", "build_engine.sh", "trt_check.json"} <= set(files)
    assert not any(name.endswith((".engine", ".plan")) for name in files)
    assert result.manifest["bundle"]["runtime"] == {"package": "tensorrt", "min": "10.3", "below": None,
                                                    "why": "graph checked for TensorRT 10.3 by our compatibility check"}
    assert "cuda-python" in (result.path / "requirements.txt").read_text()
    assert "builds model.engine on first use" in (result.path / "README.md").read_text()
    runner = result.manifest["bundle"]["verified"]["linux/x86_64"]["runner"]
    assert runner.startswith("run.py: onnxruntime ") and "on the trt input graph" in runner
    own = device_run(torch_free_python, result.path, "--verify")
    assert own.returncode == 2 and "tensorrt is not installed" in own.stderr
    assert "pip install 'tensorrt>=10.3'" in own.stderr and "JetPack" in own.stderr  # as requirements.txt says
    graph = device_run(torch_free_python, result.path, "--verify", "--graph")
    assert graph.returncode == 0 and "verify: PASS" in graph.stdout, graph.stderr


def test_openvino_bundle_runs_without_torch(tmp_path, torch_free_python):
    result = api.bundle("test_convmlp", "openvino", out=tmp_path / "ov")
    assert {"model.xml", "model.bin"} <= set(result.manifest["files"])
    assert "model.onnx" not in result.manifest["files"]  # the device runs the IR
    on_device = device_run(torch_free_python, result.path, "--verify", "--json")
    assert on_device.returncode == 0, on_device.stderr
    report = json.loads(on_device.stdout)
    assert report["runtime"]["inference_precision"] == "f32" and report["verify"]["passed"]


def test_bad_bundle_requests_fail_before_any_export(tmp_path):
    result = invoke("bundle", "--target", "trt", "--platform", "linux/arm64", "--cpu", "cortex-a72", "--int8",
                    "--out", str(tmp_path / "x"), "--model", "nope")
    assert result.returncode == 2 and "unknown model" in result.stderr.lower()
    result = invoke("bundle", "--platform", "windows", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "unknown --platform 'windows'" in result.stderr
    result = invoke("bundle", "-t", "openvino", "--int8", "--platform", "linux/arm64", "--cpu", "cortex-a72",
                    "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "cortex-a72" in result.stderr
    assert not (tmp_path / "x").exists()


def test_the_printed_device_line_of_a_signed_bundle_works_as_written(tmp_path):
    """``bundle --sign-key`` prints the device's commands with --public-key; run literally (bash) in a folder
    holding only the archive and the public key, they verify the bundle against that key."""
    from conftest import invoke

    keys, device = tmp_path / "keys", tmp_path / "device"
    assert invoke("keygen", "--out", str(keys)).returncode == 0
    made = invoke("bundle", "-m", "test_convmlp", "--sign-key", str(keys / "signing.pem"), "--out",
                  str(tmp_path / "b"))
    assert made.returncode == 0, made.stderr
    (line,) = [line for line in made.stdout.splitlines() if line.startswith("on the device: ")]
    command, _, advice = line.removeprefix("on the device: ").partition("  (")
    assert command.endswith("python3 run.py --verify --public-key ../signing.pub.pem"), line
    assert advice == "with the signing.pub.pem beside signing.pem copied beside the archive)"
    device.mkdir()
    shutil.copy(tmp_path / "b.tar.gz", device)
    shutil.copy(keys / "signing.pub.pem", device)
    result = subprocess.run(["bash", "-c", command], cwd=device, capture_output=True, text=True, timeout=600,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0 and "signed by key" in result.stdout, result.stderr[-2000:]
