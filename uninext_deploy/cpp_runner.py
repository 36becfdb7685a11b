"""The bundle's C++ runner (the sources in ``uninext_deploy/cpp``), built and proven on the host before it ships.

Its third-party headers and static libraries come from Debian packages through a private apt state
(:mod:`.debian`), once, into a cache folder: nlohmann-json (the manifest), stb_image (PNG, BMP...),
libjpeg-turbo and libwebp (JPEG and WebP: the decoders Pillow is built with), OpenSSL's libcrypto (sha256)
and, for ONNX Runtime, its C/C++ API headers from Debian trixie (the onnxruntime wheel ships its library but
no headers; the C API is versioned, so 1.21 headers run on any newer library, and the bundle's requirements.txt
asks for one: :func:`runtime_requirement`). The bundle carries the headers it was built with; the compilers are
the host's (g++ and cmake, for linux/arm64 Debian's aarch64 cross compiler), and the runtime libraries are those
of the pip packages run.py uses: the host's, or the ARM environment's aarch64 wheels.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .arm.platforms import host_platform
from .cache import cache_dir, filling
from .debian import host_architecture, private_apt, step
from .device import runtimes
from .device.integrity import sha256
from .errors import UserError

SOURCES = Path(__file__).parent / "cpp"
COMMON_SOURCES = ("CMakeLists.txt", "runner.hpp", "runner.cpp", "image.hpp", "image.cpp")
FOLDER = "cpp"  # in the bundle
BINARY = "runner"
SETUP = "C++ runner set-up"
# include name -> (Debian package/suite, path in the package, what it is); bookworm's, or trixie's where bookworm
# has none. Every runner includes these; a runtime's own come from its declaration (runtimes.Runtime.cpp_headers).
COMMON_HEADERS = {
    "nlohmann": ("nlohmann-json3-dev/bookworm", "usr/include/nlohmann", "nlohmann-json 3.11, MIT"),
    "stb": ("libstb-dev/bookworm", "usr/include/stb", "stb_image, public domain"),
}
HEADERS = {**COMMON_HEADERS, **{name: source for runtime in runtimes.RUNTIMES.values()
                                for name, source in runtime.cpp_headers.items()}}
# static libraries, per architecture, from bookworm (they link against its glibc 2.36; trixie's need 2.38+)
LIBRARIES = {"libjpeg62-turbo-dev/bookworm": ("libjpeg.a", ("jpeglib.h", "jerror.h", "jmorecfg.h", "jconfig.h")),
             "libssl-dev/bookworm": ("libcrypto.a", ("openssl",)),
             "libwebp-dev/bookworm": ("libwebp.a", ("webp",))}
ARCHES = {"linux/x86_64": ("amd64", "x86_64-linux-gnu"), "linux/arm64": ("arm64", "aarch64-linux-gnu")}
INSTALL = "apt-get install cmake g++ g++-aarch64-linux-gnu"


def compiler(platform: str) -> str:
    """The host's g++, or Debian's cross compiler for the other architecture."""
    return "g++" if platform == host_platform() else f"{ARCHES[platform][1]}-g++"


def available(runtime: str) -> str | None:
    """Why runtime ``runtime`` has no C++ runner, or None when it has one."""
    declared = runtimes.get(runtime)
    return None if declared.cpp_source else declared.cpp_missing


class Toolchain:
    """Headers and per-architecture static libraries in ``cache`` (default ~/.cache/uninext-deploy/cpp)."""

    def __init__(self, cache: str | Path | None = None, log=print):
        self.root = Path(cache or cache_dir("cpp"))
        self.log = log

    def prefix(self, platform: str) -> Path:
        return self.root / ARCHES[platform][0]

    def check_compilers(self, platform: str) -> None:
        """One UserError naming the install command when cmake or the compiler for ``platform`` is missing."""
        platforms = {host_platform(), platform}
        missing = [tool for tool in ("cmake", *sorted(compiler(p) for p in platforms)) if shutil.which(tool) is None]
        if missing:
            raise UserError(f"the C++ runner for {platform} builds with {' and '.join(missing)}, not found: "
                            f"{INSTALL} (or drop --cpp)")

    def ensure(self, platform: str) -> None:
        """Check the compilers; fetch what is missing (idempotent). One UserError naming the fix."""
        self.check_compilers(platform)
        with filling(self.root):
            need_headers = not all((self.root / "include" / name).exists() for name in HEADERS)
            need_libraries = not all((self.prefix(platform) / "lib" / library).exists()
                                     for library, _ in LIBRARIES.values())
            if need_headers or need_libraries:
                self._fetch(platform, need_headers)

    def _fetch(self, platform: str, headers: bool) -> None:
        arch, triplet = ARCHES[platform]
        self.root.mkdir(parents=True, exist_ok=True)
        host = host_architecture(SETUP)
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            options = private_apt(Path(tmp) / "apt", f"{host},{arch}" if arch != host else host,
                                  suites=("bookworm", "trixie"))
            self.log(f"{SETUP}: Debian package lists (private apt state)")
            step(["apt-get", *options, "-q", "update"], "package lists", SETUP)
            packages = [package for package, _, _ in HEADERS.values()] if headers else []
            packages += [package.replace("/", f":{arch}/") for package in LIBRARIES]
            self.log(f"{SETUP}: {' '.join(packages)}")
            debs = Path(tmp) / "debs"
            debs.mkdir()
            step(["apt-get", *options, "-q", "download", *packages], "download headers and libraries", SETUP, cwd=debs)
            unpacked = Path(tmp) / "unpacked"
            for deb in sorted(debs.glob("*.deb")):
                step(["dpkg", "-x", str(deb), str(unpacked)], f"unpack {deb.name}", SETUP)
            if headers:
                staging = Path(tmp) / "include"
                for name, (_, path, _) in HEADERS.items():
                    shutil.copytree(unpacked / path, staging / name)
                shutil.rmtree(self.root / "include", ignore_errors=True)
                os.replace(staging, self.root / "include")
            staging = Path(tmp) / arch
            for library, includes in LIBRARIES.values():
                (staging / "lib").mkdir(parents=True, exist_ok=True)
                shutil.copy2(unpacked / "usr/lib" / triplet / library, staging / "lib" / library)
                for include in includes:  # the architecture's own headers (jconfig.h, openssl/configuration.h) too
                    for base in (unpacked / "usr/include", unpacked / "usr/include" / triplet):
                        if (base / include).is_dir():
                            shutil.copytree(base / include, staging / "include" / include, dirs_exist_ok=True)
                        elif (base / include).exists():
                            (staging / "include").mkdir(parents=True, exist_ok=True)
                            shutil.copy2(base / include, staging / "include" / include)
            shutil.rmtree(self.prefix(platform), ignore_errors=True)
            os.replace(staging, self.prefix(platform))


def runtime_requirement(runtime: str, requirement: dict, toolchain: Toolchain) -> dict:
    """The runtime versions the C++ runner of ``runtime`` runs on, from the model's ``requirement`` and the
    headers it is built with, as the runtime declares (ONNX Runtime: none older than its headers' C API)."""
    declared = runtimes.get(runtime)
    if declared.cpp_requirement is None:
        return requirement
    return declared.cpp_requirement(requirement, toolchain.root / "include")


def stage(folder: Path, runtime: str, toolchain: Toolchain, manifest: dict) -> dict[str, str]:
    """Write the C++ runner of ``runtime`` into ``folder``/cpp: the sources, the headers it includes and a
    README. {file name in the bundle: role}."""
    declared = runtimes.get(runtime)
    target = folder / FOLDER
    (target / "include").mkdir(parents=True)
    for name in (*COMMON_SOURCES, declared.cpp_source):
        shutil.copyfile(SOURCES / name, target / name)
    for name in (*COMMON_HEADERS, *declared.cpp_headers):
        shutil.copytree(toolchain.root / "include" / name, target / "include" / name)
    (target / "README.md").write_text(_readme(manifest, declared))
    return {path.relative_to(folder).as_posix(): "cpp" for path in sorted(target.rglob("*")) if path.is_file()}


def runtime_root(runtime: str, platform: str, arm_cache=None, cpu: str | None = None) -> Path:
    """The pip package folder holding the runtime's library for ``platform``: the host's, or the ARM
    environment's aarch64 wheel (set up on first use)."""
    module = runtimes.get(runtime).module
    if platform != host_platform():
        from .arm.environment import ArmEnvironment

        return ArmEnvironment(arm_cache).site(runtime) / module
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise UserError(f"{module} is not installed here; the C++ runner links its library: pip install {module}")
    return Path(spec.origin).parent


def build(cpp: Path, platform: str, root: Path, work: Path, toolchain: Toolchain) -> Path:
    """Configure and build the runner in ``cpp`` for ``platform`` in ``work``, linking the runtime at ``root``
    and the toolchain's static libraries, with the bundle's own CMakeLists.txt. The runner's path.

    A runner built before from the same sources, runtime library, static libraries and compilers is taken from
    the cache instead (12 s a build on 2 cores, where every bundle of a runtime compiles the same sources).
    ccache would need installing and misses across bundle folders: their paths are in every compile line."""
    cached = toolchain.root / "runners" / _build_key(cpp, platform, root, toolchain) / BINARY
    with filling(cached.parent):
        if not cached.is_file():
            built = _compile(cpp, platform, root, work, toolchain)
            shutil.copy2(built, cached.with_suffix(".incoming"))
            os.replace(cached.with_suffix(".incoming"), cached)
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy2(cached, work / BINARY)
    return work / BINARY


def _build_key(cpp: Path, platform: str, root: Path, toolchain: Toolchain) -> str:
    """What the runner's binary depends on: its sources (not the README), the runtime's libraries at ``root``,
    the static libraries and the compilers' versions."""
    digest = hashlib.sha256(f"{platform}\0{root}\0{toolchain.prefix(platform)}\n".encode())
    for path in sorted(p for p in cpp.rglob("*") if p.is_file() and p.name != "README.md"):
        digest.update(f"{path.relative_to(cpp).as_posix()}\0{sha256(path)}\n".encode())
    for path in sorted([*root.rglob("*.so*"), *toolchain.prefix(platform).rglob("*.a")]):
        digest.update(f"{path}\0{path.stat().st_size}\0{path.stat().st_mtime_ns}\n".encode())
    for tool in (["cmake", "--version"], [compiler(platform), "--version"]):
        digest.update(subprocess.run(tool, capture_output=True, text=True).stdout.encode())
    return digest.hexdigest()[:32]


def _compile(cpp: Path, platform: str, root: Path, work: Path, toolchain: Toolchain) -> Path:
    prefix = toolchain.prefix(platform)
    configure = ["cmake", "-S", str(cpp), "-B", str(work), "-DCMAKE_BUILD_TYPE=Release", f"-DRUNTIME_ROOT={root}",
                 f"-DJPEG_INCLUDE_DIR={prefix}/include", f"-DJPEG_LIBRARY={prefix}/lib/libjpeg.a",
                 "-DOPENSSL_USE_STATIC_LIBS=TRUE", f"-DOPENSSL_ROOT_DIR={prefix}",
                 f"-DOPENSSL_INCLUDE_DIR={prefix}/include", f"-DOPENSSL_CRYPTO_LIBRARY={prefix}/lib/libcrypto.a",
                 f"-DWEBP_INCLUDE_DIR={prefix}/include", f"-DWEBP_LIBRARY={prefix}/lib/libwebp.a"]
    if platform != host_platform():
        work.mkdir(parents=True, exist_ok=True)
        toolchain_file = work / "cross.cmake"
        toolchain_file.write_text(f"set(CMAKE_SYSTEM_NAME Linux)\nset(CMAKE_SYSTEM_PROCESSOR {ARCHES[platform][1].split('-')[0]})"
                                  f"\nset(CMAKE_CXX_COMPILER {compiler(platform)})\n")
        configure.append(f"-DCMAKE_TOOLCHAIN_FILE={toolchain_file}")
    for command, what in ((configure, "configure"), (["cmake", "--build", str(work), "-j", str(runtimes.usable_cpus())],
                                                     "compile")):
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            errors = [line for line in (result.stderr + result.stdout).splitlines() if "error" in line.lower()]
            raise UserError(f"the C++ runner did not {what} for {platform}: "
                            f"{(errors or result.stderr.splitlines() or ['no message'])[0].strip()[:240]}")
    return work / BINARY


def _readme(manifest: dict, declared: runtimes.Runtime) -> str:
    cpp = manifest["bundle"]["cpp"]
    return f"""# C++ runner ({declared.title})

The same three verbs as `run.py`, on the same files: `manifest.json` read with nlohmann-json, every file's
sha256 checked (OpenSSL) before anything loads, JPEGs decoded by libjpeg-turbo and other images by stb_image,
resized exactly as Pillow does (`image.cpp`), golden tensors read from the raw files the manifest lists.

Needs CMake 3.16+, a C++17 compiler, libjpeg, OpenSSL and libwebp headers (Debian/Ubuntu:
`apt-get install cmake g++ libjpeg-dev libssl-dev libwebp-dev`) and `{runtimes.spec(cpp['runtime'])}` from
`requirements.txt`, whose package cmake finds through `python3` (the one `pip install -r requirements.txt`
installed into; `-DPYTHON=<python>` names another). {declared.cpp_library_note} From the bundle folder:

```
cmake -S cpp -B cpp/build -DCMAKE_BUILD_TYPE=Release
cmake --build cpp/build -j
```

```
{cpp['runner']} --verify          # checksums, then the golden inputs against PyTorch's outputs
{cpp['runner']} photo.jpg         # {"feature maps' statistics (--save DIR writes .npy)" if all(o["kind"] == "features"
                                       for o in manifest["outputs"]) else "top-5 classes"}
{cpp['runner']} --bench           # latency percentiles (--threads N, --iters N, --warmup N)
```

Exit codes as run.py's and the host's `uninext-deploy verify`: 0 done (the golden check passed), 1 the golden
check failed, 2 a problem to fix, named in one line with its fix. `include/` holds the third-party headers it was
built and verified with on the host
({"; ".join(what for _, _, what in (*COMMON_HEADERS.values(), *declared.cpp_headers.values()))}).
"""
