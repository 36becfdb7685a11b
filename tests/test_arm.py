"""Parity on an emulated aarch64 CPU: a real end-to-end run (qemu user mode, aarch64 ONNX Runtime), plus
the set-up's refusals. The environment is set up once per machine in the user's cache folder."""

import shutil

import pytest

from uninext_deploy import api
from uninext_deploy.console import progress
from uninext_deploy.arm.environment import SYSROOT_MARK, ArmEnvironment
from uninext_deploy.arm.platforms import normalise_platform
from uninext_deploy.errors import UserError

pytestmark = pytest.mark.skipif(shutil.which("apt-get") is None and shutil.which("qemu-aarch64-static") is None,
                                reason="ARM emulation set-up needs apt (Debian/Ubuntu) or qemu-user-static")


class Counts:
    """A reporter keeping every count a step reached: (text, done, total)."""

    def __init__(self):
        self.counts = []

    def started(self, step):
        self.counts.append((step.text, step.done, step.total))

    def advanced(self, step):
        self.counts.append((step.text, step.done, step.total))

    def finished(self, step, ok):
        pass


@pytest.mark.parametrize("name, precision", [("test_convmlp", "fp32"), ("convmlp_s", "int8")])
def test_ort_artifact_on_emulated_cortex_a76_matches_pytorch_and_x86(tmp_path, name, precision):
    """FP32 on the tiny model (the ISAs must agree to 1e-5 on any graph); INT8 on a real one at 96 px. The
    emulated CPU is a device: each artifact's bundle runs its own run.py --infer there."""
    seen = Counts()
    batches = (1, 2) if precision == "fp32" else (1,)
    with progress.reporting(seen):
        report = api.parity(name, "ort", precision=precision, batches=batches,
                            input_size=64 if precision == "fp32" else 96, inputs=api.Inputs(random=1),
                            out=tmp_path, platform=api.PlatformOptions("linux/arm64", "cortex-a76"))
    run = report.runs[0]
    assert report.passed, report.as_dict()
    assert all(r.arm is not None for r in report.runs)
    assert run.arm["runner"].startswith("onnxruntime ") and \
        run.arm["runner"].endswith(" on emulated aarch64 cortex-a76 (qemu) (aarch64)"), run.arm["runner"]
    assert run.arm["images"].samples >= 8 and run.arm["vs_host"].top1_decisive == 1.0
    if precision == "fp32":
        assert run.arm["vs_host"].rel_max_abs <= 1e-5
    shown = [step for step, _, _ in seen.counts]
    assert "running run.py --json on emulated aarch64 cortex-a76 (qemu) (slow: emulated)" in shown, shown


def test_platform_names():
    assert normalise_platform("linux/aarch64") == "linux/arm64" and normalise_platform("linux/x86_64") == "host"
    with pytest.raises(UserError, match="unknown --platform 'windows'"):
        normalise_platform("windows")


def test_refusals_name_the_reason_before_any_export(tmp_path):
    from uninext_deploy.arm.run import runtime_for

    with pytest.raises(UserError, match="OpenVINO gives wrong results under qemu's -cpu max"):
        api.parity("convmlp_s", "openvino", platform=api.PlatformOptions("linux/arm64", "max"), out=tmp_path / "a")
    assert not (tmp_path / "a").exists()
    assert runtime_for("openvino", "fp32", "max,sme=off") == "openvino"
    with pytest.raises(UserError, match="cannot compile INT8 models for cortex-a72"):
        runtime_for("openvino", "int8", "cortex-a72")
    with pytest.raises(UserError, match="trt targets NVIDIA GPUs"):
        runtime_for("trt", "fp16", "cortex-a76")
    with pytest.raises(UserError, match="unknown --cpu 'cortex-a78'"):
        ArmEnvironment(tmp_path / "cache").ensure("ort", "cortex-a78")


def test_a_failing_setup_step_is_one_clear_line(tmp_path, monkeypatch):
    env = ArmEnvironment(tmp_path / "cache", log=lambda *_: None)
    monkeypatch.setattr("uninext_deploy.arm.environment.PLATFORM_TAGS", ["no_such_platform_tag"])
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "qemu-aarch64-static").write_text("")
    mark = tmp_path / "cache" / "sysroot" / SYSROOT_MARK  # a sysroot there: only the wheels are set up
    mark.parent.mkdir(parents=True)
    mark.write_text("")
    with pytest.raises(UserError, match=r"ARM set-up step 'aarch64 wheels of onnxruntime' failed: .*; check the network"):
        env.ensure("ort", "cortex-a76")
    assert not (tmp_path / "cache" / "site-ort").exists()  # nothing half-installed left in place
    assert not list((tmp_path / "cache").glob(".site-ort*"))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["ort", "openvino"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_sweep_every_cpu_backend_and_precision_on_arm(tmp_path, target, precision):
    report = api.parity("convmlp_s", target, precision=precision, batches=(1,), input_size=96, inputs=api.Inputs(random=1),
                        out=tmp_path, platform=api.PlatformOptions("linux/arm64"))
    assert report.passed, report.as_dict()
