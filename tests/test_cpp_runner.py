"""The bundle's C++ runner: built from the bundle's own cpp/ folder, it verifies the golden outputs, classifies the
shipped photos as run.py does (top-5 and logits within the FP32 tolerance), extracts feature maps, times, and refuses a
tampered bundle with one line; on x86-64 and cross-compiled for emulated aarch64."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import edited, invoke, on_x86_without_vnni
from uninext_deploy import api, cpp_runner
from uninext_deploy.device.compare import TOLERANCES, compare_arrays
from uninext_deploy.errors import UserError
from uninext_deploy.images import find_images

HOST = "linux/x86_64"
PHOTOS = [str(p) for p in find_images()]  # the shipped photos


@pytest.fixture(scope="module")
def ort_bundle(tmp_path_factory):
    return api.bundle("convmlp_s", "ort", input_size=64, cpp=True,
                      out=tmp_path_factory.mktemp("bundles") / "convmlp_s-cpp")


@pytest.fixture(scope="module")
def ov_features_bundle(tmp_path_factory):
    return api.bundle(api.ModelOptions("test_uninext", features="stage2,stage4"), "openvino", cpp=True,
                      out=tmp_path_factory.mktemp("bundles") / "uninext-features-ov-cpp")


def built(bundle, where: Path, runtime: str) -> Path:
    """The runner built from the bundle's cpp/ folder, as the bundle step builds it."""
    return cpp_runner.build(bundle.path / "cpp", HOST, cpp_runner.runtime_root(runtime, HOST), where,
                            cpp_runner.Toolchain())


@pytest.fixture(scope="module")
def ort_runner(ort_bundle, tmp_path_factory) -> Path:
    """ort_bundle's runner, built once for the tests that run it (30 s a build on 2 shared cores)."""
    return built(ort_bundle, tmp_path_factory.mktemp("ort-runner"), "ort")


def run(binary: Path, bundle: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), "--bundle", str(bundle), *args], capture_output=True, text=True, timeout=600)


def test_bundle_ships_the_cpp_runner_it_built_and_verified(ort_bundle):
    b = ort_bundle.manifest["bundle"]
    files = ort_bundle.manifest["files"]
    assert {"cpp/CMakeLists.txt", "cpp/runner.cpp", "cpp/image.cpp", "cpp/ort.cpp", "cpp/README.md",
            "cpp/include/nlohmann/json.hpp", "cpp/include/stb/stb_image.h",
            "cpp/include/onnxruntime/onnxruntime_cxx_api.h"} <= {n for n in files if files[n]["role"] == "cpp"}
    assert "cpp/openvino.cpp" not in files
    assert b["cpp"]["built"][HOST]["binary_bytes"] > 100_000
    cpp = b["verified"][f"{HOST} (C++)"]
    assert cpp["passed"] and cpp["runner"].startswith("cpp/build/runner: onnxruntime ")  # "C++" is in the key
    assert cpp["metrics"]["cosine"] == pytest.approx(b["verified"][HOST]["metrics"]["cosine"], abs=1e-6)
    readme = (ort_bundle.path / "cpp/README.md").read_text()
    assert "cmake -S cpp -B cpp/build" in readme and "cmake --build cpp/build" in readme
    assert "cpp/build/runner --verify" in (ort_bundle.path / "README.md").read_text()
    # run.py runs on onnxruntime 1.17 (opset 20), the C++ runner on the release of its headers' C API (21)
    assert b["runtime"]["min"] == "1.17" and b["cpp"]["runtime"]["min"] == "1.21"
    assert "onnxruntime>=1.21,<2" in (ort_bundle.path / "requirements.txt").read_text().splitlines()


def test_cpp_classifies_the_shipped_photos_as_run_py_does(ort_bundle, ort_runner, torch_free_python, tmp_path):
    cpp = run(ort_runner, ort_bundle.path, *PHOTOS, "--json", "--save", str(tmp_path / "cpp"))
    assert cpp.returncode == 0, cpp.stderr
    py = subprocess.run([torch_free_python, str(ort_bundle.path / "run.py"), *PHOTOS, "--json", "--save",
                         str(tmp_path / "py")], capture_output=True, text=True, timeout=600)
    assert py.returncode == 0, py.stderr
    ours, theirs = json.loads(cpp.stdout)["predictions"], json.loads(py.stdout)["predictions"]
    assert [[t["class"] for t in p["top"]] for p in ours] == [[t["class"] for t in p["top"]] for p in theirs]
    assert [p["image"] for p in ours] == PHOTOS
    bounds = TOLERANCES["fp32"]
    for photo in PHOTOS:  # preprocessing and inference within the FP32 tolerance of run.py's
        stem = Path(photo).stem
        m = compare_arrays(np.load(tmp_path / "py" / f"{stem}.logits.npy")[None],
                           np.load(tmp_path / "cpp" / f"{stem}.logits.npy")[None])
        assert m.rel_max_abs <= bounds["rel_max_abs"][0] and m.cosine >= bounds["cosine"][0], photo
    assert json.loads(cpp.stdout)["files_checked"] == len(ort_bundle.manifest["files"])

    bench = run(ort_runner, ort_bundle.path, "--bench", "--iters", "5", "--warmup", "1", "--json")
    timing = json.loads(bench.stdout)["bench"]
    assert timing["runs"] == 5 and 0 < timing["min_ms"] <= timing["p50_ms"] <= timing["p99_ms"]
    assert timing["peak_rss_mb"] > 1
    bad = run(ort_runner, ort_bundle.path, "--bench", "--iters", "0")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --iters must be a whole number of at least 1, got 0"


def test_cpp_converts_photos_in_every_form_as_run_py_does(ort_bundle, ort_runner, photo_zoo, tmp_path):
    folder, _ = photo_zoo
    photos = [str(folder / name) for name in ("gray.png", "cmyk.jpg", "rgba.png", "palette.png", "gray16.png",
                                              "photo.webp", "rgba.webp", "rotated.JPG", "tiny.PNG")]
    cpp = run(ort_runner, ort_bundle.path, *photos, "--save", str(tmp_path / "cpp"))
    assert cpp.returncode == 0, cpp.stderr
    py = subprocess.run([sys.executable, str(ort_bundle.path / "run.py"), *photos, "--save", str(tmp_path / "py")],
                        capture_output=True, text=True, timeout=600)
    assert py.returncode == 0, py.stderr
    for photo in photos:  # the same pixels into the same library: the very same logits out
        stem = Path(photo).stem
        ours, theirs = np.load(tmp_path / "cpp" / f"{stem}.logits.npy"), np.load(tmp_path / "py" / f"{stem}.logits.npy")
        assert np.array_equal(ours, theirs), (photo, np.abs(ours - theirs).max())
    for name in ("bomb.png", "broken.jpg"):
        refused = run(ort_runner, ort_bundle.path, str(folder / name))
        assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
        assert refused.stderr.startswith(f"error: cannot read image {folder / name}: "), refused.stderr


def test_cpp_refuses_a_tampered_bundle_with_one_line(ort_bundle, ort_runner, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(ort_bundle.path, folder)
    assert run(ort_runner, folder, "--verify").returncode == 0
    golden = folder / "golden/outputs.logits.bin"
    (np.fromfile(golden, "<f4") * 1.01).astype("<f4").tofile(golden)
    result = run(ort_runner, folder, "--verify")
    assert result.returncode == 2 and result.stderr.splitlines() == [
        "error: golden/outputs.logits.bin does not match its sha256 in manifest.json (modified or corrupted); "
        "re-copy the bundle or rebuild it with `uninext-deploy bundle`"]
    shutil.copyfile(ort_bundle.path / "golden/outputs.logits.bin", golden)
    (folder / "model.onnx").unlink()
    result = run(ort_runner, folder, PHOTOS[0])
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and "model.onnx is missing" in result.stderr


def test_cpp_gives_a_bundle_the_scrutiny_run_py_does_in_the_same_words(ort_bundle, ort_runner, tmp_path):
    x = np.fromfile(ort_bundle.path / "golden/inputs.bin", "<f4")
    nan = x.copy()
    nan[7] = np.inf

    def output_shape(m):
        m["outputs"][0]["shape"] = [1, 10]

    def input_name(m):
        m["input"]["name"] = "image"

    def float64(m):
        m["bundle"]["golden"]["inputs"]["dtype"] = "float64"

    def climbing(m):
        m["files"]["../x"] = {"bytes": 1, "sha256": "0", "role": "doc"}

    cases = {"output_shape": edited(ort_bundle.path, tmp_path / "output_shape", output_shape),
             "input_name": edited(ort_bundle.path, tmp_path / "input_name", input_name),
             "float64": edited(ort_bundle.path, tmp_path / "float64", float64),
             "climbing": edited(ort_bundle.path, tmp_path / "climbing", climbing),
             "nan": edited(ort_bundle.path, tmp_path / "nan", files={"golden/inputs.bin": nan.tobytes()}),
             "short": edited(ort_bundle.path, tmp_path / "short", files={"golden/inputs.bin": x[:-1].tobytes()}),
             "link": edited(ort_bundle.path, tmp_path / "link")}
    (cases["link"] / "cpp/notes").symlink_to("/etc/hostname")
    for name, folder in cases.items():
        cpp = run(ort_runner, folder, "--verify")
        python = subprocess.run([sys.executable, str(folder / "run.py"), "--verify"], capture_output=True, text=True)
        assert cpp.returncode == python.returncode == 2, (name, cpp.stderr, python.stderr)
        assert len(cpp.stderr.splitlines()) == 1 and cpp.stderr == python.stderr, (name, cpp.stderr, python.stderr)


def readme_lines(readme: Path, start: str) -> list[str]:
    """The lines of ``readme``'s code blocks that start with ``start``, without their comments: what a user types."""
    blocks = readme.read_text().split("```")[1::2]
    return [line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.startswith(start)]


def shell(line: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(line, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def device(ort_bundle, tmp_path_factory):
    """The ORT bundle's archive unpacked and set up as its READMEs say, literally: `pip install -r requirements.txt`
    into a fresh venv (from PyPI or pip's cache: 12 s here), then the cmake lines of cpp/README.md in the bundle
    folder (30 s on 2 shared cores). (bundle folder, the environment of the activated venv)"""
    root = tmp_path_factory.mktemp("device")
    subprocess.run(["tar", "xzf", str(ort_bundle.archive), "-C", str(root)], check=True)
    folder = root / ort_bundle.path.name
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # CMAKE_PREFIX_PATH: what `apt-get install libjpeg-dev libssl-dev libwebp-dev` gives, from the same Debian
    # packages the host builds with (a machine may lack them: this one has no libwebp-dev)
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "CMAKE_PREFIX_PATH": str(cpp_runner.Toolchain().prefix(HOST))}
    steps = readme_lines(folder / "README.md", "pip install") + readme_lines(folder / "cpp/README.md", "cmake ")
    assert steps == ["pip install -r requirements.txt", "cmake -S cpp -B cpp/build -DCMAKE_BUILD_TYPE=Release",
                     "cmake --build cpp/build -j"]
    for line in steps:
        done = shell(line, folder, env)
        assert done.returncode == 0, (line, done.stderr[-2000:])
    return folder, env


def test_the_runner_built_as_the_readmes_say_leaves_the_bundle_verifiable_by_every_runner(device):
    folder, env = device
    installed = shell("python3 -c 'import onnxruntime; print(onnxruntime.__version__)'", folder, env).stdout.strip()
    lines = (readme_lines(folder / "cpp/README.md", "cpp/build/runner --verify")
             + readme_lines(folder / "cpp/README.md", "cpp/build/runner photo.jpg")
             + readme_lines(folder / "README.md", "python3 run.py --verify"))
    assert len(lines) == 3
    for line in lines:
        done = shell(line.replace("photo.jpg", PHOTOS[0]), folder, env)
        assert done.returncode == 0 and done.stderr == "", (line, done.stderr)
        assert f"on onnxruntime {installed} (x86_64" in done.stdout.splitlines()[0], (line, done.stdout)
        assert "verify: PASS" in done.stdout or f"{PHOTOS[0]}\n" in done.stdout, (line, done.stdout)
    assert [p for p in folder.rglob("*") if p.is_symlink()] == []
    host = invoke("verify", str(folder))
    assert host.returncode == 0 and "golden: PASS" in host.stdout, host.stdout + host.stderr


def test_cpp_runner_refuses_an_older_onnxruntime_in_one_line(device, tmp_path):
    """Installed after the build, onnxruntime 1.20.1 serves C API 20 of the headers' 21 (GetApi returned null and
    the runner crashed, rc 139); 1.18.1's wheel has no libonnxruntime at all. cmake refuses both as well, and
    run.py, which needs only 1.17, still runs on 1.20.1."""
    folder, env = device
    installed = shell("python3 -c 'import onnxruntime; print(onnxruntime.__version__)'", folder, env).stdout.strip()
    fix = "; install a newer one: pip install -r requirements.txt"
    capi = next(Path(env["VIRTUAL_ENV"]).glob("lib/python*/site-packages/onnxruntime")) / "capi"
    refusals = {"1.20.1": ("error: onnxruntime 1.20.1 is older than 1.21, whose C API (version 21) this runner was "
                           f"built with{fix}", "onnxruntime 1.20.1 in"),
                "1.18.1": (f"error: no libonnxruntime.so.1.* in {capi}, where cmake found onnxruntime (its wheels up to "
                           f"1.18 ship none; this runner needs 1.21 or newer){fix}", "no libonnxruntime.so.1.* in")}
    try:
        for old, (refusal, configure_error) in refusals.items():
            pip = shell(f"pip install -q --no-deps onnxruntime=={old}", folder, env)
            assert pip.returncode == 0, pip.stderr
            runner = shell("cpp/build/runner --verify", folder, env)
            assert runner.returncode == 2 and runner.stderr.splitlines() == [refusal], runner.stdout + runner.stderr
            configure = shell(f"cmake -S cpp -B {tmp_path / old}", folder, env)
            assert configure.returncode != 0 and configure_error in " ".join(configure.stderr.split()), configure.stderr
            if old == "1.20.1":  # 1.18.1 was built for numpy 1 and does not import beside numpy 2
                python = shell("python3 run.py --verify", folder, env)
                assert python.returncode == 0 and "on onnxruntime 1.20.1" in python.stdout, python.stdout + python.stderr
    finally:
        assert shell(f"pip install -q --no-deps onnxruntime=={installed}", folder, env).returncode == 0


def test_every_runner_exits_1_on_a_failed_check_and_2_on_a_problem_to_fix(ort_bundle, ort_runner, tmp_path):
    """run.py, the C++ runner and the host's verify give each case the same exit code, as the bundle README says."""
    _, public, _ = api.keygen(tmp_path / "keys")
    golden = ort_bundle.path / "golden/outputs.logits.bin"
    off = (np.fromfile(golden, "<f4") * 1.01).astype("<f4").tobytes()
    cases = {"outputs off the golden ones": (edited(ort_bundle.path, tmp_path / "off", files={
                 "golden/outputs.logits.bin": off}), (), 1),
             "a modified file": (edited(ort_bundle.path, tmp_path / "modified"), (), 2),
             "a link leaving the bundle": (edited(ort_bundle.path, tmp_path / "link"), (), 2),
             "an unsigned bundle and a key": (ort_bundle.path, ("--public-key", str(public)), 2)}
    (cases["a modified file"][0] / "golden/outputs.logits.bin").write_bytes(off)
    (cases["a link leaving the bundle"][0] / "cpp/notes").symlink_to("/etc/hostname")
    for name, (folder, args, code) in cases.items():
        cpp = run(ort_runner, folder, "--verify", *args)
        python = subprocess.run([sys.executable, str(folder / "run.py"), "--verify", *args], capture_output=True,
                                text=True)
        host = invoke("verify", str(folder), *args)
        assert cpp.returncode == python.returncode == host.returncode == code, (name, cpp.stderr, python.stderr,
                                                                                host.stderr)


def test_cpp_checks_the_signature_before_anything_else(ort_bundle, ort_runner, tmp_path):
    from uninext_deploy.device.signature import load_private_key, sign

    private, public, fingerprint = api.keygen(tmp_path / "keys")
    _, other, _ = api.keygen(tmp_path / "other")
    folder = tmp_path / "copy"
    shutil.copytree(ort_bundle.path, folder)
    result = run(ort_runner, folder, "--verify", "--public-key", str(public))
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f"error: {folder} is not signed (no manifest.json.sig) but a public key was given; use a bundle made with "
        "`bundle --sign-key`, or drop --public-key to accept unsigned bundles"]
    sign(folder, load_private_key(private))
    result = run(ort_runner, folder, "--verify", "--json", "--public-key", str(public))
    assert result.returncode == 0 and json.loads(result.stdout)["signed_by"] == fingerprint
    result = run(ort_runner, folder, "--verify", "--public-key", str(other))
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "manifest.json is not signed by the key" in result.stderr
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"cosine"', '"cosine" '))
    result = run(ort_runner, folder, "--verify", "--public-key", str(public))
    assert result.returncode == 2 and "manifest.json is not signed by the key" in result.stderr
    result = run(ort_runner, folder, "--verify", "--public-key", str(private))
    assert result.returncode == 2 and "is not a PEM public key" in result.stderr


def test_openvino_cpp_extracts_the_feature_maps_run_py_does(ov_features_bundle, torch_free_python, tmp_path):
    b = ov_features_bundle.manifest["bundle"]
    assert b["verified"][f"{HOST} (C++)"]["passed"] and "cpp/openvino.cpp" in ov_features_bundle.manifest["files"]
    assert set(b["verified"][f"{HOST} (C++)"]["metrics"]["outputs"]) == {"stage2", "stage4"}
    binary = built(ov_features_bundle, tmp_path / "build", "openvino")
    photos = PHOTOS[:3]
    cpp = run(binary, ov_features_bundle.path, *photos, "--json", "--save", str(tmp_path / "cpp"))
    assert cpp.returncode == 0, cpp.stderr
    report = json.loads(cpp.stdout)
    assert report["runtime"]["inference_precision"] == "f32"
    py = subprocess.run([torch_free_python, str(ov_features_bundle.path / "run.py"), *photos, "--save",
                         str(tmp_path / "py")], capture_output=True, text=True, timeout=600)
    assert py.returncode == 0, py.stderr
    for item in report["features"]:
        for entry in item["features"]:
            ours = np.load(item_path := tmp_path / "cpp" / f"{Path(item['image']).stem}.{entry['output']}.npy")
            theirs = np.load(tmp_path / "py" / item_path.name)
            assert list(ours.shape) == entry["shape"] == list(theirs.shape)
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
            assert entry["mean"] == pytest.approx(float(theirs.mean()), abs=1e-5)


def test_cpp_names_7_bit_weights_where_8_bit_ones_saturate_as_run_py_does(eight_bit_int8_bundle, tmp_path):
    """On an emulated x86 CPU without VNNI, an 8-bit INT8 bundle fails --verify in C++ too, with run.py's note."""
    bundle = eight_bit_int8_bundle
    binary = built(bundle, tmp_path / "build", "ort")
    cpp = on_x86_without_vnni(str(binary), "--bundle", str(bundle.path), "--verify")
    py = on_x86_without_vnni(sys.executable, "run.py", "--verify", cwd=bundle.path)
    note = [line for line in py.stdout.splitlines() if line.startswith("note: ")]
    assert cpp.returncode == py.returncode == 1 and "verify: FAIL" in cpp.stdout, cpp.stdout + cpp.stderr
    assert note and note == [line for line in cpp.stdout.splitlines() if line.startswith("note: ")]


def test_tensorrt_bundle_says_why_it_has_no_cpp_runner(tmp_path):
    made = api.bundle("test_convmlp", "trt", cpp=True, out=tmp_path / "trt")
    assert not (made.path / "cpp").exists() and "cpp" not in {e["role"] for e in made.manifest["files"].values()}
    assert "TensorRT's C++ headers" in made.manifest["bundle"]["cpp"]["missing"]
    assert "No C++ runner: TensorRT's C++ headers" in (made.path / "README.md").read_text()


def test_a_runner_built_before_from_the_same_sources_comes_from_the_cache(ort_bundle, ort_runner, tmp_path):
    """The same sources, runtime and compilers give the same binary, taken from the cache; a source edit builds
    it again, another bundle's README does not."""
    toolchain = cpp_runner.Toolchain()
    root = cpp_runner.runtime_root("ort", HOST)
    key = cpp_runner._build_key(ort_bundle.path / "cpp", HOST, root, toolchain)
    assert (toolchain.root / "runners" / key / "runner").read_bytes() == ort_runner.read_bytes()
    again = built(ort_bundle, tmp_path / "again", "ort")
    assert again == tmp_path / "again" / "runner" and again.read_bytes() == ort_runner.read_bytes()
    copy = tmp_path / "cpp"
    shutil.copytree(ort_bundle.path / "cpp", copy)
    (copy / "README.md").write_text("another bundle's README")
    assert cpp_runner._build_key(copy, HOST, root, toolchain) == key
    (copy / "image.cpp").write_text((copy / "image.cpp").read_text() + "\n// edited\n")
    assert cpp_runner._build_key(copy, HOST, root, toolchain) != key


def test_a_bundle_whose_cpp_runner_does_not_build_is_not_written(monkeypatch, tmp_path):
    sources = tmp_path / "sources"
    shutil.copytree(cpp_runner.SOURCES, sources)
    (sources / "runner.cpp").write_text((sources / "runner.cpp").read_text().replace("int main(", "int main(broken"))
    monkeypatch.setattr(cpp_runner, "SOURCES", sources)
    with pytest.raises(UserError, match=r"the C\+\+ runner did not compile for linux/x86_64: .*runner.cpp:\d+:\d+: error"):
        api.bundle("test_convmlp", "ort", cpp=True, out=tmp_path / "b")
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.tar.gz").exists()


def test_missing_compiler_is_one_line_naming_the_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match=r"builds with cmake and aarch64-linux-gnu-g\+\+ and g\+\+, not found: "
                                        r"apt-get install cmake g\+\+ g\+\+-aarch64-linux-gnu"):
        cpp_runner.Toolchain(tmp_path).check_compilers("linux/arm64")


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="ARM emulation and the aarch64 libraries need apt")
def test_cross_compiled_cpp_runner_verifies_on_emulated_aarch64(tmp_path):
    made = invoke("bundle", "-m", "test_convmlp", "--platform", "linux/arm64", "--cpp", "--out", str(tmp_path / "arm"))
    assert made.returncode == 0, made.stderr
    lines = [line for line in made.stdout.splitlines() if line.startswith("golden check on")]
    assert "golden check on linux/arm64 (cpp/build/runner: onnxruntime " in made.stdout, lines
    assert len(lines) == 4 and all(line.count("C++") <= 1 for line in lines), lines  # it read "(C++) (C++ runner: "
    b = json.loads((tmp_path / "arm" / "manifest.json").read_text())["bundle"]
    arm = b["verified"]["linux/arm64 (C++)"]
    assert arm["passed"] and "emulated aarch64 cortex-a76" in arm["runner"] and arm["platform"] == "linux/arm64"
    assert b["cpp"]["built"]["linux/arm64"]["binary_bytes"] > 100_000
    assert arm["metrics"]["max_abs"] == pytest.approx(b["verified"]["linux/arm64"]["metrics"]["max_abs"], rel=1e-6)
