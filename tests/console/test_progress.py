"""Progress: steps announced deep in the library reach the reporter the caller installed (and nobody else),
the CLI shows them as lines with elapsed seconds off a terminal, and counted steps are rendered with counts."""

import io
import re

import pytest
from rich.console import Console

from uninext_deploy import api
from uninext_deploy.console import progress
from uninext_deploy.console.reporters import LineReporter, LiveReporter, shown_on

from conftest import run_cli

LINE = re.compile(r"^\[ *\d+\.\d s\] ")  # the off-terminal format: seconds since the command started


class Recorder:
    """Every event as (event, text, depth, done, total)."""

    def __init__(self):
        self.events = []

    def started(self, step):
        self.events.append(("started", step.text, step.depth, step.done, step.total))

    def advanced(self, step):
        self.events.append(("advanced", step.text, step.depth, step.done, step.total))

    def finished(self, step, ok):
        self.events.append(("finished" if ok else "failed", step.text, step.depth, step.done, step.total))

    def texts(self, event="started"):
        return [text for kind, text, *_ in self.events if kind == event]

    def last(self, prefix):
        """(done, total) of the last event of the step whose text starts with ``prefix``."""
        done, total = next((e[3], e[4]) for e in reversed(self.events) if e[1].startswith(prefix))
        return done, total


def test_steps_nest_count_and_end_on_the_installed_reporter():
    seen = Recorder()
    with progress.reporting(seen), progress.step("outer"):
        with progress.step("counted", total=3) as counted:
            counted.advance()
            counted.advance(5)  # held at the total
        progress.phase("first part")
        with progress.step("inside the first part"):
            pass
        progress.phase("second part")
    assert seen.events == [
        ("started", "outer", 0, 0, None),
        ("started", "counted", 1, 0, 3), ("advanced", "counted", 1, 1, 3), ("advanced", "counted", 1, 3, 3),
        ("finished", "counted", 1, 3, 3),
        ("started", "first part", 1, 0, None), ("started", "inside the first part", 2, 0, None),
        ("finished", "inside the first part", 2, 0, None), ("finished", "first part", 1, 0, None),
        ("started", "second part", 1, 0, None), ("finished", "second part", 1, 0, None),
        ("finished", "outer", 0, 0, None)]


def test_without_a_reporter_steps_show_nothing_and_still_count():
    with progress.step("silent", total=2) as counted:
        assert counted.counts(lambda x: x + 1)(1) == 2
        progress.phase("also silent")
    assert counted.done == 1
    outer = Recorder()
    with progress.reporting(outer), progress.reporting(None), progress.step("kept"):  # None leaves the caller's
        pass
    assert outer.texts() == ["kept"]


def test_a_failing_step_ends_failed_and_the_line_reporter_writes_no_done():
    seen, lines = Recorder(), io.StringIO()
    with pytest.raises(ValueError):
        with progress.reporting(seen), progress.step("outer"):
            progress.phase("doomed")
            raise ValueError
    assert [e[0] for e in seen.events[-2:]] == ["failed", "failed"]
    with pytest.raises(ValueError), progress.reporting(LineReporter(lines)), progress.step("outer"):
        raise ValueError
    assert [LINE.sub("", line) for line in lines.getvalue().splitlines()] == ["outer"]


def test_line_reporter_writes_elapsed_seconds_indents_and_counts_at_most_every_interval():
    lines = io.StringIO()
    with progress.reporting(LineReporter(lines, every=0.0)), progress.step("export"):
        with progress.step("calibrating", total=2) as counted:
            counted.advance()
            counted.advance()
    quiet = io.StringIO()
    with progress.reporting(LineReporter(quiet, every=3600)), progress.step("calibrating", total=2) as counted:
        counted.advance()
    written = lines.getvalue().splitlines()
    assert all(LINE.match(line) for line in written), written
    assert [LINE.sub("", line) for line in written] == ["export", "  calibrating (0/2)", "  calibrating (1/2)",
                                                      "  calibrating (2/2)", "done"]
    assert [LINE.sub("", line) for line in quiet.getvalue().splitlines()] == ["calibrating (0/2)", "done"]


def test_live_reporter_renders_a_bar_and_count_for_counted_steps_only():
    console = Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None)
    with shown_on(console, terminal=True) as reporter:
        assert isinstance(reporter, LiveReporter)
        with progress.reporting(reporter), progress.step("exporting"):
            with progress.step("calibrating", total=32) as counted:
                counted.advance(12)
                shown = Console(file=io.StringIO(), width=100, color_system=None)
                shown.print(reporter.bars.get_renderable())
                rows = shown.file.getvalue().splitlines()
        assert not reporter.bars.tasks  # every row goes when its step ends
    assert rows[0].split()[1:2] == ["exporting"] and "/" not in rows[0]
    assert "  calibrating" in rows[1] and "12/32" in rows[1] and "━" in rows[1]


def test_library_steps_reach_the_reporter_from_deep_inside(tmp_path):
    """NNCF quantization counts its calibration samples; parity counts batches; per-layer profiling its runs."""
    seen = Recorder()
    with progress.reporting(seen):
        artifact = api.export("test_convmlp", "openvino", precision="int8", out=tmp_path / "ov").path
        api.parity(artifact=artifact, inputs=api.Inputs(random=2))
        api.profile(artifact=artifact, timing=api.TimingOptions(iters=2, warmup=1), per_layer=True, eager=False)
    started = seen.texts()
    assert {"converting the ONNX to OpenVINO IR", "finding the ops the CPU plugin would run in f32",
            "peak memory of a process running the artifact alone"} <= set(started), started
    assert seen.last("quantizing with NNCF, calibrated on 32 samples") == (32, 32)
    assert seen.last("running openvino on 10 photos and 2 random inputs") == (12, 12)  # batches of 1
    assert seen.last("PyTorch outputs on 12 inputs") == (12, 12)
    assert seen.last("per-layer profile of openvino (10 runs)") == (10, 10)


def test_cli_off_a_terminal_logs_each_step_of_an_int8_export_with_elapsed_seconds(tmp_path):
    result = run_cli("export", "-m", "test_convmlp", "--int8", "-o", str(tmp_path / "a"))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if LINE.match(line)]
    steps = [LINE.sub("", line) for line in lines]
    assert steps[0] == "exporting test_convmlp to ort" and steps[-1] == "done"
    for expected in ("  tracing to ONNX (TorchScript exporter, opset 20)",
                     "  simplifying the ONNX graph (onnxsim), checked on 2 inputs",
                     "  calibrating INT8 ranges (percentile) on 32 samples, in two passes (extremes, then histograms) "
                     "(0/64)",
                     "  compiling the ort int8 artifact"):
        assert expected in steps, steps
    seconds = [float(line[1:line.index(" s]")]) for line in lines]
    assert seconds == sorted(seconds)
