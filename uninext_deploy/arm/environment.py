"""An aarch64 Python with the host's ONNX Runtime / OpenVINO versions, run under qemu user mode.

Set up once in a cache folder and reused (every step skips what exists): the static qemu-aarch64
emulator from Debian's qemu-user-static, an arm64 sysroot with Python 3.11 unpacked from Debian
packages through a private apt state (the host's apt and dpkg are left untouched), and aarch64 wheels
of the very runtime versions the host uses. No Docker, chroot or binfmt_misc.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ..cache import cache_dir, filling
from ..debian import host_architecture, private_apt, step
from ..device import runtimes
from ..errors import UserError
from .platforms import check_cpu

PLATFORM_TAGS = ["manylinux2014_aarch64"] + [f"manylinux_2_{v}_aarch64" for v in (17, 27, 28, 31, 34, 35, 36)]
# python3.11-venv (ensurepip and the pip wheel): its Python makes venvs as a board's does (an emulated board
# over SSH sets its runtime up from requirements.txt)
SYSROOT_PACKAGES = ["python3.11-minimal", "libpython3.11-stdlib", "python3.11-venv", "libstdc++6", "libgcc-s1"]
SYSROOT_MARK = "usr/lib/python3.11/ensurepip/__init__.py"  # a sysroot set up before it had venv lacks this
SKIPPED_PACKAGES = ("dpkg", "tar", "install-info", "perl", "libperl", "mailcap", "mime-support", "media-types",
                    "readline-common", "libtirpc-common", "libgdbm")
NEEDED_FREE_BYTES = 1 << 30
SETUP = "ARM set-up"


def default_cache_dir() -> Path:
    return cache_dir("arm64")


class ArmEnvironment:
    def __init__(self, cache_dir: str | Path | None = None, log=print):
        self.root = Path(cache_dir or default_cache_dir())
        self.log = log

    @property
    def qemu(self) -> Path:
        return self.root / "qemu-aarch64-static"

    def site(self, runtime: str) -> Path:
        return self.root / f"site-{runtime}"

    def cpu_root(self, cpu: str) -> Path:
        return self.root / f"sysroot-{cpu.replace(',', '_').replace('=', '_')}"

    def ensure(self, runtime: str, cpu: str) -> None:
        """Make every piece exist (idempotent); one clear UserError when a step cannot run."""
        check_cpu(cpu)
        with filling(self.root):
            self._ensure(runtime, cpu)

    def _ensure(self, runtime: str, cpu: str) -> None:
        if not self._complete(runtime, cpu) and shutil.disk_usage(self.root).free < NEEDED_FREE_BYTES:
            free = shutil.disk_usage(self.root).free >> 20
            raise UserError(f"only {free} MB free in {self.root}; the ARM environment needs about 600 MB: free "
                            "some space or point --arm-cache elsewhere")
        if not self.qemu.exists() and shutil.which("qemu-aarch64-static"):
            shutil.copy2(shutil.which("qemu-aarch64-static"), self.qemu)
        need_sysroot = not (self.root / "sysroot" / SYSROOT_MARK).exists()
        if need_sysroot and (self.root / "sysroot").exists():  # an older one: made anew, with its CPU copies
            for old in (self.root / "sysroot", *self.root.glob("sysroot-*")):
                shutil.rmtree(old)
        if not self.qemu.exists() or need_sysroot:
            self._install_from_debian(not self.qemu.exists(), need_sysroot)
        if not (self.site(runtime) / runtimes.get(runtime).module).is_dir():
            self._install_wheels(runtime)
        cpuinfo = self.cpu_root(cpu) / "proc" / "cpuinfo"
        if not cpuinfo.exists() or cpuinfo.stat().st_size == 0:
            self._make_cpu_root(cpu)

    def _complete(self, runtime: str, cpu: str) -> bool:
        return self.qemu.exists() and (self.root / "sysroot" / SYSROOT_MARK).exists() and (self.site(runtime) / runtimes.get(runtime).module).is_dir() and \
            (self.cpu_root(cpu) / "proc" / "cpuinfo").exists()

    def command(self, runtime: str, cpu: str, script: Path, *args: str) -> tuple[list[str], dict]:
        """The command line and environment that run ``script`` on the emulated CPU with ``runtime``."""
        root = self.cpu_root(cpu)
        env = {**os.environ, "PYTHONPATH": str(self.site(runtime)), "PYTHONNOUSERSITE": "1"}
        return [str(self.qemu), "-cpu", cpu, "-L", str(root), str(root / "usr/bin/python3.11"), str(script),
                *args], env

    def program(self, cpu: str, *command: str) -> tuple[list[str], dict]:
        """The command line that runs an aarch64 program (``command``) on the emulated CPU."""
        return [str(self.qemu), "-cpu", cpu, "-L", str(self.cpu_root(cpu)), *command], dict(os.environ)

    def _install_from_debian(self, need_qemu: bool, need_sysroot: bool) -> None:
        """qemu-aarch64-static and the arm64 Python sysroot, from Debian packages fetched through a private
        apt state (the host's own sources, both architectures): no change to the host's apt or dpkg."""
        host_arch = host_architecture(SETUP)
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            options = private_apt(Path(tmp) / "apt", architectures=f"arm64,{host_arch}")
            self.log("ARM set-up: Debian package lists (private apt state)")
            _step(["apt-get", *options, "-q", "update"], "package lists")
            if need_qemu:
                self.log("ARM set-up: qemu-user-static")
                _step(["apt-get", *options, "-q", "download", f"qemu-user-static:{host_arch}"],
                      "download qemu-user-static", cwd=tmp)
                deb = next(Path(tmp).glob("qemu-user-static_*.deb"))
                _step(["dpkg", "-x", str(deb), f"{tmp}/qemu"], "unpack qemu-user-static")
                shutil.move(f"{tmp}/qemu/usr/bin/qemu-aarch64-static", self.qemu)
            if need_sysroot:
                self.log("ARM set-up: arm64 Python 3.11 sysroot")
                listing = _step(["apt-cache", *options, "depends", "--recurse", "--no-recommends", "--no-suggests",
                                 "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances",
                                 *[f"{p}:arm64" for p in SYSROOT_PACKAGES]], "arm64 dependency list")
                packages = sorted({line.split(":")[0] for line in listing.splitlines()
                                   if line and not line.startswith((" ", "<")) and not line.startswith(SKIPPED_PACKAGES)})
                debs = Path(tmp) / "debs"
                debs.mkdir()
                _step(["apt-get", *options, "-q", "download", *[f"{p}:arm64" for p in packages]],
                      "download arm64 packages", cwd=debs)
                staging = Path(tmp) / "sysroot"
                for deb in sorted(debs.glob("*.deb")):
                    _step(["dpkg", "-x", str(deb), str(staging)], f"unpack {deb.name}")
                os.replace(staging, self.root / "sysroot")

    def _install_wheels(self, runtime: str) -> None:
        package = runtimes.get(runtime).package
        pins = [f"{package}=={importlib.metadata.version(package)}", f"numpy=={importlib.metadata.version('numpy')}"]
        self.log(f"ARM set-up: aarch64 wheels {' '.join(pins)}")
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".site-{runtime}."))
        tags = [arg for tag in PLATFORM_TAGS for arg in ("--platform", tag)]
        try:
            _step([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-cache-dir",
                   "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", *tags,
                   "--target", str(staging), *pins], f"aarch64 wheels of {package}")
            # .pyc files are architecture-independent: compiling here saves minutes of emulated compiling
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(staging)], capture_output=True)
            os.replace(staging, self.site(runtime))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _make_cpu_root(self, cpu: str) -> None:
        """A hard-linked copy of the sysroot whose proc/cpuinfo describes ``cpu`` (see cpuinfo.py)."""
        root = self.cpu_root(cpu)
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{root.name}."))
        shutil.rmtree(staging)
        _step(["cp", "-al", str(self.root / "sysroot"), str(staging)], "copy the sysroot")
        (staging / "proc").mkdir(exist_ok=True)
        info = _step([str(self.qemu), "-cpu", cpu, "-L", str(staging), str(staging / "usr/bin/python3.11"), "-I",
                      str(Path(__file__).with_name("cpuinfo.py"))], f"cpuinfo for {cpu}")
        (staging / "proc" / "cpuinfo").write_text(info)
        if root.exists():
            shutil.rmtree(root)
        os.replace(staging, root)


def _step(command: list[str], what: str, cwd=None) -> str:
    return step(command, what, SETUP, cwd)
