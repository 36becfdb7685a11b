"""The device's state read from the kernel's files (a board's sysfs laid out under a folder), and its warnings."""

import os

from uninext_deploy.device import state


def board_root(tmp_path, governor="performance", mhz=(1800, 1800), top=1800, celsius=45.0, load=0.1):
    for cpu, now in enumerate(mhz):
        freq = tmp_path / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        freq.mkdir(parents=True)
        (freq / "scaling_governor").write_text(governor + "\n")
        (freq / "scaling_cur_freq").write_text(f"{now * 1000}\n")
        (freq / "cpuinfo_max_freq").write_text(f"{top * 1000}\n")
    for index, (kind, value) in enumerate((("cpu-thermal", celsius), ("gpu-thermal", celsius - 5))):
        zone = tmp_path / f"sys/class/thermal/thermal_zone{index}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(f"{int(value * 1000)}\n")
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/loadavg").write_text(f"{load:.2f} 0.50 0.40 1/200 4242\n")
    return tmp_path


def test_a_cool_idle_board_at_full_clock_has_nothing_to_warn_of(tmp_path):
    now = state.read(board_root(tmp_path, mhz=(1800, 1500)))
    assert now["governor"] == "performance" and now["cpu_mhz"] == 1500 and now["cpu_max_mhz"] == 1800
    assert now["clock_ratio"] == round(1500 / 1800, 3) and now["temperature_c"] == 45.0
    assert now["hottest_zone"] == "cpu-thermal" and now["load_1m"] == 0.1 and now["cpus"] == os.cpu_count()
    assert "jetson" not in now
    assert state.warnings(state.read(board_root(tmp_path / "b")), now) == [
        "throttling: a CPU ran at 83% of its maximum clock under the performance governor"]


def test_busy_hot_and_throttled_boards_are_named(tmp_path):
    busy = state.read(board_root(tmp_path / "busy", load=10.0 * os.cpu_count()))
    hot = state.read(board_root(tmp_path / "hot", celsius=85.5, mhz=(900, 900), top=1800))
    found = state.warnings(busy, hot)
    assert [w.split(":")[0] for w in found] == ["busy", "hot", "throttling"]
    assert f"load {10.0 * os.cpu_count():.2f} on {os.cpu_count()} CPUs" in found[0] and "86 C (cpu-thermal)" in found[1]
    ondemand = state.read(board_root(tmp_path / "ondemand", governor="ondemand"))
    assert state.warnings(ondemand, ondemand) == [
        "governor ondemand: clocks follow the load, so times vary (set the performance governor for stable numbers)"]


def test_what_the_kernel_does_not_expose_is_none_not_a_guess(tmp_path):
    nothing = state.read(tmp_path)
    assert {k: v for k, v in nothing.items() if k != "cpus"} == {
        "governor": None, "cpu_mhz": None, "cpu_max_mhz": None, "clock_ratio": None, "temperature_c": None,
        "hottest_zone": None, "load_1m": None}
    assert state.warnings(nothing, nothing) == []
    assert isinstance(state.read("/")["load_1m"], float)  # every Linux has /proc/loadavg


def test_a_jetson_names_its_release_and_gpu_clock(tmp_path):
    root = board_root(tmp_path)
    (root / "etc").mkdir()
    (root / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic\n")
    gpu = root / "sys/class/devfreq/17000000.gpu"
    gpu.mkdir(parents=True)
    (gpu / "cur_freq").write_text("1300500000\n")
    now = state.read(root)
    assert now["jetson"].startswith("# R36 (release), REVISION: 4.0") and now["gpu_mhz"] == 1300
    assert now["power_mode"] is None  # nvpmodel is asked on the board itself (root /), not of a copied tree
