"""OpenVINO on the CPU: IR (.xml/.bin) converted from the float ONNX; FP16 as compressed weights, INT8
quantized by NNCF on the shared calibration data.

The inference precision is always set explicitly: left alone, OpenVINO runs FP32 models in bf16 on
CPUs that have it (max abs ~1e-2 on a toy net) and in f16 on ARM. FP32 and INT8 artifacts run in f32
(INT8 keeps its non-quantized ops in f32); FP16 artifacts run in f16 where the CPU has it, else bf16.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np

from ..console import progress
from ..device.compare import compare, compare_arrays, run_batched
from ..device.runtimes import inference_precision
from ..errors import MissingDependency
from ..export.scopes import module_path
from .base import Backend, Compiled, Runner, open_session

# Op types NNCF quantizes: a block without one has nothing to return to float.
QUANTIZED_TYPES = {"Convolution", "GroupConvolution", "MatMul"}


def default_cache_dir() -> Path:
    from ..cache import cache_dir

    return cache_dir("openvino")


class OpenVinoRunner(Runner):
    def per_layer_profile(self, x: np.ndarray, runs: int = 10) -> list[dict]:
        """OpenVINO's performance counters (executed layers after fusion), averaged over ``runs``."""
        request = open_session(self.runtime, self.path, self.precision, self.threads, perf_count=True).native["request"]
        totals: dict[str, dict] = {}
        with progress.step(f"per-layer profile of {self.name} ({runs} runs)", total=runs) as profiling:
            for _ in range(runs):
                request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
                for info in request.get_profiling_info():
                    if info.status.name != "EXECUTED":
                        continue
                    entry = totals.setdefault(info.node_name, {"name": info.node_name, "op": info.node_type,
                                                               "kernel": info.exec_type, "ms": 0.0})
                    entry["ms"] += info.real_time.total_seconds() * 1000.0 / runs
                profiling.advance()
        return sorted(totals.values(), key=lambda e: -e["ms"])


class OpenVinoBackend(Backend):
    name = "openvino"
    runner_class = OpenVinoRunner
    applies_precision = True
    host_packages = ("nncf",)  # its INT8 quantizer

    def available(self) -> str | None:
        try:
            import openvino  # noqa: F401
        except ImportError:
            return str(MissingDependency("openvino", f"install it with `{self.install_hint()}` to use --target "
                                                  "openvino"))
        return None

    def precision_notes(self) -> list[str]:
        import openvino as ov

        capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        return [f"FP16 artifacts run in {inference_precision('fp16', capabilities)}, FP32 and INT8 ones in f32, set "
                f"explicitly (the CPU plugin offers {' '.join(capabilities)})"]

    def compile(self, onnx_path: Path, folder: Path, precision: str, int8) -> Compiled:
        import openvino as ov

        with progress.step("converting the ONNX to OpenVINO IR"):
            model = ov.convert_model(str(onnx_path))
        report = {"inference_precision": "f16 where the CPU has it, else bf16" if precision == "fp16" else "f32"}
        if precision == "int8":
            model, quant_report = _quantize(model, int8)
            report.update(quant_report)
        with progress.step("saving the IR" + (" with FP16 weights" if precision == "fp16" else "")):
            ov.save_model(model, str(folder / "model.xml"), compress_to_fp16=precision == "fp16")
        return Compiled({"model.xml": "model", "model.bin": "weights"}, report)

    def open(self, path: Path, precision: str, threads: int | None = None, name: str = "",
             cache_dir: Path | None = None) -> Runner:
        return OpenVinoRunner(self.name, path, precision, threads, name=name or self.name,
                              cache_dir=cache_dir or default_cache_dir())

    def describe(self, report: dict) -> list[str]:
        lines = [f"OpenVINO inference precision: {report['inference_precision']}"]
        if "quantizer" in report:
            from ..export.precision import calibrated_on

            placement = f"{report['model_type']} placement, {report.get('preset', 'mixed')} preset"
            lines.append(f"INT8 by {report['quantizer']} ({placement}) on {calibrated_on(report)}"
                         f": cosine to the float IR {report['cosine_vs_float']:.5f}; "
                         f"{len(report['kept_float'])} ops kept float by the model's hints, "
                         f"{len(report.get('float_in_plugin', []))} that the CPU plugin runs in f32")
        if report.get("fallback"):
            lines.append(f"  blocks back in float for --int8-min-cosine: {', '.join(report['fallback'])}")
        if "quantizer" in report:
            from ..export.precision import memory

            lines += memory(report)
        return lines


def _quantize(model, request):
    """NNCF post-training quantization, keeping the same ops and scopes float as the ORT path; with
    ``--int8-min-cosine``, blocks return to float worst first until the INT8 IR reaches it (precision.fall_back,
    the QDQ graph's loop), ranked by how much each block's own output loses (``block_damage``).

    Settings, measured at 224 (2 threads, one race per model; cosine of the INT8 IR to the float IR on the
    shipped photos):
    - the symmetric preset (zero points 0, as on the QDQ path), not the transformer type's default mixed one,
      whose activation zero points cost a Subtract per quantized input: UniNet-B1 10.17 -> 8.81 ms (cosine
      0.9938 -> 0.9930), UniNeXt-T 27.2 -> 25.2 ms (0.9993 -> 0.9986); ConvMLP-S the same.
    - ``model_type=TRANSFORMER`` for models whose blocks multiply activations (``int8_attention``), else
      NNCF's CNN placement: without it UniNeXt-T reaches cosine 0.935 and UniNet-B1 0.985; with it, ConvMLP-S
      runs 6.67 ms against 5.15 (its FakeQuantizes sit where the CPU plugin needs twice the reorders).
    - no op types forced float beyond NNCF's own rules: the transformer type already keeps Softmax, MVN and
      GELU float (same cosine and speed either way), and on ConvMLP-S forcing them cost 6.88 against 5.15 ms.
    - ops the CPU plugin would run in f32 anyway are left unquantized (``float_in_plugin``): UniNeXt-T's
      depthwise convs read their FakeQuantize through the token -> NCHW Transpose and Reshape, which the
      plugin does not fold, so it ran the FakeQuantize in f32 and then the conv in f32; unquantized: 24.1 ->
      22.5 ms, cosine 0.9986 -> 0.9989 (UniNet-B1 and ConvMLP-S: none such, the same within noise).
    NNCF's own ``quantize_with_accuracy_control`` was tried for the fallback and left: 4 min 11 s on the tiny
    test UniNet, ending at cosine 0.979.
    """
    import nncf

    from ..export.precision import fall_back, warn_if_lossy
    from ..export.quiet import quiet

    hinted = [op.get_friendly_name() for op in model.get_ops()
              if any(fnmatch.fnmatchcase(module_path(op.get_friendly_name() + "/_") or "", p)
                     for p in request.float_patterns)]
    batches = request.samples.batches(request.batch)

    model_type = nncf.ModelType.TRANSFORMER if request.attention else None
    # NNCF's remedy for int16 saturation on x86 without VNNI: 7-bit weights in every layer (its default, kept for
    # 8 bits: the first layer only)
    seven_bit = request.options.resolved_weight_bits == 7
    overflow_fix = nncf.OverflowFix.ENABLE if seven_bit else nncf.OverflowFix.FIRST_LAYER

    def quantize(ignored: list[str]):
        samples = len(batches) * request.batch
        with (progress.step(f"quantizing with NNCF, calibrated on {samples} samples", total=samples) as calibrating,
              quiet()):
            def counted(batch):  # NNCF reads each calibration batch through this
                calibrating.advance(len(batch))
                return batch
            return nncf.quantize(
                model, nncf.Dataset(batches, counted), subset_size=samples,
                preset=nncf.QuantizationPreset.PERFORMANCE, model_type=model_type,
                ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
                advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=overflow_fix))

    reference = run_batched(_runner(compile_f32(model)), request.check_inputs, request.batch)

    def score(compiled) -> float:
        return compare(reference, run_batched(_runner(compiled), request.check_inputs, request.batch)).cosine

    def cosine(m) -> float:
        return score(compile_f32(m))

    quantized = quantize(hinted)
    with progress.step("finding the ops the CPU plugin would run in f32"):
        compiled = compile_f32(quantized)  # read for the plugin's precisions, then scored unless requantized
        plugin_float = float_in_plugin(quantized, compiled, set(hinted))
    kept = hinted + plugin_float
    if plugin_float:
        quantized = quantize(kept)
        compiled = compile_f32(quantized)
    achieved = score(compiled)
    report = {"quantizer": f"nncf {nncf.__version__}", "model_type": "transformer" if request.attention else "cnn",
              "weight_bits": request.options.resolved_weight_bits,
              "calib_size": len(request.samples), "calib_images": request.samples.distinct,
              "calib": str(request.options.calib or "shipped"), "kept_float": hinted, "float_in_plugin": plugin_float,
              "preset": "symmetric", "cosine_vs_float": achieved, "fallback": [], "sensitivity": []}
    target = request.options.min_cosine
    if target is None or achieved >= target:
        warn_if_lossy(achieved)
        return quantized, report
    with progress.step("ranking blocks by the INT8 error they add"):
        ranking = block_damage(model, quantized, request)

    def attempt(blocks: list[dict]):
        candidate = quantize(kept + [name for entry in blocks for name in entry["nodes"]])
        return candidate, cosine(candidate)
    quantized, achieved, report["fallback"] = fall_back(ranking, attempt, target, quantized, achieved)
    report.update(cosine_vs_float=achieved, met_target=achieved >= target, sensitivity=ranking)
    return quantized, report


def float_in_plugin(quantized, compiled, ignored: set[str]) -> list[str]:
    """Conv/MatMul ops of ``quantized`` that the CPU plugin executes in f32 (by ``compiled``'s runtime model, the
    model compiled by ``compile_f32``), not in ``ignored``."""
    types = {op.get_friendly_name(): op.get_type_name() for op in quantized.get_ops()}
    found = []
    for layer in compiled.get_runtime_model().get_ordered_ops():
        info = layer.get_rt_info()
        if info["runtimePrecision"].astype(str) != "f32":
            continue
        found += [name for name in info["originalLayersNames"].astype(str).split(",")
                  if types.get(name) in QUANTIZED_TYPES and name not in ignored]
    return found


def compile_f32(model):
    """``model`` compiled in f32 on the CPU."""
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def _runner(compiled):
    """A compiled model as a runner returning {output name: array}."""
    def outputs(x):
        result = compiled(x)
        return {port.get_any_name(): result[port] for port in compiled.outputs}
    return outputs


def block_damage(float_model, quantized, request) -> list[dict]:
    """Blocks ranked by the error they add: 1 - cosine of each block's output in the INT8 IR against the float
    IR, less the same at the block before it, on the check photos (worst first, one pass of each model).

    NNCF keeps the converted ops' names, so each block's last op is found in both models by name.
    """
    from ..export.precision import block_of

    nodes: dict[str, list[str]] = {}
    last, weighted = {}, set()
    for op in float_model.get_ordered_ops():
        name = op.get_friendly_name()
        if module_path(name + "/_") is None or op.get_output_size() != 1:
            continue
        block = block_of(name, request.block_depth)
        nodes.setdefault(block, []).append(name)
        last[block] = name
        if op.get_type_name() in QUANTIZED_TYPES:
            weighted.add(block)
    found = {op.get_friendly_name() for op in quantized.get_ops()}
    blocks = [b for b in last if last[b] in found and b in weighted]
    probe = {}
    for key, model in (("float", float_model), ("int8", quantized)):
        clone = model.clone()
        by_name = {op.get_friendly_name(): op for op in clone.get_ops()}
        ports = clone.add_outputs([by_name[last[b]].output(0) for b in blocks])
        names = [port.get_any_name() for port in ports]
        outputs = run_batched(_runner(compile_f32(clone)), request.check_inputs, request.batch)
        probe[key] = dict(zip(blocks, (outputs[n] for n in names)))
    ranking, before = [], 0.0
    for block in blocks:
        error = 1.0 - compare_arrays(probe["float"][block], probe["int8"][block], logits=False).cosine
        ranking.append({"block": block, "nodes": nodes[block], "error": max(error - before, 0.0)})
        before = error
    return sorted(ranking, key=lambda e: -e["error"])
