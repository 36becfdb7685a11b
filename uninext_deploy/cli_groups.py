"""CLI option groups, each defined once: a group's flags expand into every command that takes the group,
and reach the command as one options object (Polygraphy's argument groups, on typer).

    @app.command()
    @grouped(model=ModelOptions, trt=TrtOptions)
    def export(target: Target = "ort", ..., model: ModelOptions, trt: TrtOptions) -> None: ...

A renamed flag stays as a hidden option that refuses with one line naming its new name.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Optional

import typer

from .api import (BuildOptions, DeviceOptions, Int8Options, ModelOptions, PlatformOptions, TimingOptions, TrtOptions,
                  UserError)

DEFAULT_CPU = PlatformOptions().cpu


def _option(*names: str, help: str, panel: str, metavar: str | None = None, hidden: bool = False):
    return typer.Option(*names, help=help, rich_help_panel=panel, metavar=metavar, hidden=hidden)


MODEL, INT8, TRT, PLATFORM, DEVICE, TIMING, BUILD = ("Model", "INT8", "TensorRT", "Platform / ARM", "Device", "Timing",
                                                     "Build (Dask)")

# group -> {field: annotation}; the field's default is the dataclass default
FLAGS: dict[type, dict[str, object]] = {
    ModelOptions: {
        "model": Annotated[str, _option("--model", "-m", help="Registered model name (see `models`).", panel=MODEL,
                                        metavar="NAME")],
        "input_size": Annotated[Optional[str], _option(
            "--input-size", help="Input side, or height and width: 224, 224x192 (default: the model's native "
                                 "size).", panel=MODEL, metavar="SIZE")],
        # a str, not a Path: pathlib would fold the // of a URL
        "weights": Annotated[Optional[str], _option(
            "--weights", help="Official checkpoint to load: a file, an https URL (downloaded once into the user "
                              "cache; URL#sha256=HEX checks it) or a published name: in1k (imagenet), cifar10, "
                              "cifar100, flowers102, or MODEL.TAG such as convmlp_s.in1k.", panel=MODEL,
            metavar="PATH|URL|NAME")],
        "seed": Annotated[int, _option("--seed", help="Seed of the deterministic weights used without --weights "
                                                      "(and of the random inputs).", panel=MODEL, metavar="N")],
        "features": Annotated[Optional[str], _option(
            "--features", help="Backbone feature maps instead of logits: 'all' or stages by index (0-based, as "
                               "timm's out_indices) or name, e.g. 1,2,3 or stage2,stage3 (see `models`).",
            panel=MODEL, metavar="STAGES")],
        "num_classes": Annotated[Optional[int], _option(
            "--num-classes", help="Classifier size of a fine-tuned model (default: the checkpoint's, else 1000).",
            panel=MODEL, metavar="N")],
    },
    Int8Options: {
        "calib": Annotated[Optional[Path], _option("--calib", help="Folder of calibration images (default: the "
                                                                    "shipped photos, augmented).", panel=INT8,
                                                   metavar="DIR")],
        "calib_size": Annotated[int, _option("--calib-size", help="Number of calibration samples.", panel=INT8,
                                             metavar="N")],
        "method": Annotated[str, _option("--calib-method", help="minmax, entropy or percentile.", panel=INT8,
                                         metavar="METHOD")],
        "min_cosine": Annotated[Optional[float], _option(
            "--int8-min-cosine", help="Fallback target: return blocks to float, most sensitive first, until the "
                                      "cosine to the float graph reaches this.", panel=INT8, metavar="COS")],
        "weight_bits": Annotated[Optional[int], _option(
            "--int8-weight-bits", help="7 or 8: 7 for x86 devices without VNNI, whose INT8 kernels saturate on 8-bit "
                                       "weights (default: 7 where this machine's would, else 8).", panel=INT8,
            metavar="BITS")],
        "quantize_classifier": Annotated[bool, _option("--quantize-classifier", help="Quantize the final classifier "
                                                                                     "too.", panel=INT8, metavar="")],
    },
    TrtOptions: {
        "trt_version": Annotated[Optional[str], _option("--trt-version", help="TensorRT version to check the graph "
                                                                              "against (default: the installed one, "
                                                                              "else the backend's default; "
                                                                              "the export says which).", panel=TRT,
                                                        metavar="X.Y")],
        "force": Annotated[bool, _option("--force", help="Export even when the TensorRT check fails.", panel=TRT,
                                         metavar="")],
        "dla_core": Annotated[Optional[int], _option("--dla-core", help="Build for this Jetson DLA core.", panel=TRT,
                                                     metavar="N")],
    },
    PlatformOptions: {
        "platform": Annotated[str, _option("--platform", help="linux/x86_64 (this machine) or linux/arm64 (also "
                                                              "checked on an emulated aarch64 CPU).", panel=PLATFORM,
                                           metavar="OS/ARCH")],
        "cpu": Annotated[str, _option("--cpu", help=f"Emulated ARM CPU (qemu -cpu): {DEFAULT_CPU} is Jetson Orin / "
                                                    "Raspberry Pi 5 class.", panel=PLATFORM, metavar="CPU")],
        "arm_cache": Annotated[Optional[Path], _option("--arm-cache", help="Where the ARM environment is set up once "
                                                                           "(default: ~/.cache).", panel=PLATFORM,
                                                       metavar="DIR")],
    },
    DeviceOptions: {
        "device": Annotated[Optional[list[str]], _option(
            "--device", help="Run it on this device over SSH instead: user@host[:port] or a Host alias of "
                             "~/.ssh/config (its keys, agent, ProxyJump and known_hosts as ssh uses them); "
                             "again for more devices, run in parallel.",
            panel=DEVICE, metavar="DEST")],
        "devices": Annotated[Optional[str], _option(
            "--devices", help="Many devices at once, in parallel: an Ansible-style YAML inventory "
                              "(FILE.yml, or FILE.yml:GROUP for one group and its children) or DEST,DEST.",
            panel=DEVICE, metavar="INVENTORY[:GROUP]")],
        "accept_new_host_key": Annotated[bool, _option(
            "--accept-new-host-key", help="Trust and record the host key of a device known_hosts does not list "
                                          "yet (a changed key is refused all the same).", panel=DEVICE, metavar="")],
        "timeout": Annotated[float, _option("--device-timeout", help="Seconds any one step on the device "
                                                                     "(upload, runtime set-up, run) may take.",
                                            panel=DEVICE, metavar="S")],
    },
    BuildOptions: {
        "cluster": Annotated[Optional[str], _option(
            "--cluster", help="Build the candidates on the Dask scheduler at this address (its workers need this "
                              "package installed); default: a local cluster of one-thread worker processes.",
            panel=BUILD, metavar="tcp://HOST:PORT")],
        "workers": Annotated[Optional[int], _option(
            "--workers", help="Worker processes of the local cluster (default: one per CPU, as memory allows at "
                              "4 GB each); 0 builds here, one after another.", panel=BUILD, metavar="N")],
        "resume": Annotated[bool, _option("--resume", help="Reuse the builds an interrupted run of the same "
                                                           "optimize finished (kept in OUT.partial/).",
                                          panel=BUILD, metavar="")],
    },
    TimingOptions: {
        "threads": Annotated[Optional[int], _option("--threads", help="CPU threads (default: all cores).",
                                                    panel=TIMING, metavar="N")],
        "warmup": Annotated[int, _option("--warmup", help="Untimed runs first.", panel=TIMING, metavar="N")],
        "iters": Annotated[Optional[int], _option("--iters", help="Timed runs (default 50).", panel=TIMING,
                                                  metavar="N")],
        "seconds": Annotated[Optional[float], _option("--seconds", help="Time budget instead of --iters.",
                                                      panel=TIMING, metavar="S")],
        "fresh": Annotated[bool, _option("--fresh", help="Time it again on a device where the results store "
                                                     "(`uninext-deploy results`) has this bundle timed there.",
                                         panel=TIMING, metavar="")],
    },
}

def grouped(renamed: dict[str, str] | None = None, **groups):
    """Expand each group (``name=OptionsClass`` or ``name=(OptionsClass, field, ...)`` for a subset) into its
    flags on the decorated command, and pass the command one built options object per group. ``renamed``:
    {old flag: what to say instead}, kept as hidden options that refuse with that one line."""
    renamed = renamed or {}

    def decorate(fn):
        signature = inspect.signature(fn, eval_str=True)
        own = [p for name, p in signature.parameters.items() if name not in groups]
        added, owners = [], {}
        for group, spec in groups.items():
            cls, *subset = spec if isinstance(spec, tuple) else (spec,)
            defaults = {f.name: f.default for f in fields(cls)}
            for field, annotation in FLAGS[cls].items():
                if subset and field not in subset:
                    continue
                name = f"{group}__{field}"
                owners[name] = (group, field)
                added.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=defaults[field],
                                               annotation=annotation))
        for i, (old, instead) in enumerate(renamed.items()):
            added.append(inspect.Parameter(f"renamed__{i}", inspect.Parameter.KEYWORD_ONLY, default=None,
                                           annotation=Annotated[Optional[str], typer.Option(old, hidden=True)]))

        @functools.wraps(fn)
        def wrapper(**kwargs):
            for i, (old, instead) in enumerate(renamed.items()):
                if kwargs.pop(f"renamed__{i}") is not None:
                    raise UserError(f"{old} is gone: {instead}")
            values: dict[str, dict] = {group: {} for group in groups}
            for name in list(kwargs):
                if name in owners:
                    group, field = owners[name]
                    values[group][field] = kwargs.pop(name)
            built = {}
            for group, spec in groups.items():
                cls = spec[0] if isinstance(spec, tuple) else spec
                built[group] = cls(**values[group])
            return fn(**kwargs, **built)

        wrapper.__signature__ = signature.replace(parameters=own + added)
        wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
        return wrapper
    return decorate
