"""Optimize's candidates timed where they will run: on one device, or on every device of a fleet at once, each
by its bundle's own run.py --bench in turns (so a device's drift hits all alike); each device's winner, the one
artifact fastest where it is slowest, and their bundles for each device's platform. Never on a build worker."""

from __future__ import annotations

from pathlib import Path

from ..device.timing import TURN_WARMUP, summarize
from ..devices import report_of, run_bundle
from ..errors import ParityFailure, UserError
from ..options import PlatformOptions, TimingOptions
from ..results import OptimizeResult


def race_on_device(result: OptimizeResult, evaluated: dict, device, budget: dict, tmp: Path, timing: TimingOptions,
                    platform: PlatformOptions, rounds: int = 5) -> None:
    """Each evaluated candidate packaged as its bundle and timed on the device by its run.py --bench, in
    ``rounds`` turns (_bench_in_turns); fill in their device latencies and the device's record."""
    from ..bundle import package

    place, facts = device
    bundles = {index: package(artifact, run, platform=platform, tolerance=budget, out=tmp / f"device-{index}").path
               for index, (artifact, run, _) in evaluated.items()}
    latencies, state, warned = _bench_in_turns(place, bundles, timing, result.input_shape[0], rounds)
    for index, latency in latencies.items():
        result.candidates[index].device_latency = latency
    result.device = {"name": place.name, "cpu": facts["cpu"], "machine": facts["machine"], "state": state,
                     "warnings": warned}


def _bench_in_turns(place, bundles: dict, timing: TimingOptions, batch: int, rounds: int) -> tuple[dict, dict, list]:
    """Every bundle ({index: folder}) timed on ``place`` by its run.py --bench, in ``rounds`` turns (each after
    TURN_WARMUP runs, as the host's race), so that the device's drift (heat, other load) hits every candidate
    alike: ({index: Latency}, the device's state after the last, the warnings its runs gave)."""
    times: dict = {index: [] for index in bundles}
    args = ["--bench", "--json", "--iters", str(max(1, timing.runs // rounds)), "--warmup", str(TURN_WARMUP),
            *(["--threads", str(timing.threads)] if timing.threads else [])]
    states, warned = [], []
    for _ in range(rounds):
        for index, folder in bundles.items():
            bench = report_of(run_bundle(place, folder, args), "bench", "run.py --bench", place.where)["bench"]
            times[index] += bench["times_ms"]
            states.append(bench["state"])
            warned += [w for w in bench["warnings"] if w not in warned]
    return ({index: summarize(samples, batch) for index, samples in times.items()},
            states[-1]["after"] if states else None, warned)


def race_on_fleet(result: OptimizeResult, evaluated: dict, fleet, budget: dict, tmp: Path,
                   timing: TimingOptions, rounds: int = 5) -> None:
    """Every evaluated candidate timed on every device of ``fleet`` (a DeviceOptions naming several) at once,
    each device in turns as one device is (_bench_in_turns), its bundles made for its platform (once per
    platform); each device's latencies into the candidates' ``fleet_latency`` and its record, or its one-line
    end, into ``result.fleet``."""
    import threading

    from ..bundle import package
    from ..devices import fleet as on_fleet, platform_of

    made, lock = {}, threading.Lock()

    def bundle_of(index: int, wanted: str) -> Path:
        with lock:
            if (index, wanted) not in made:
                artifact, run, _ = evaluated[index]
                made[index, wanted] = package(artifact, run, platform=PlatformOptions(wanted), tolerance=budget,
                                              out=tmp / f"fleet-{index}-{wanted.replace('/', '-')}").path
        return made[index, wanted]

    def time_there(place) -> dict:
        facts = place.describe()
        wanted = platform_of(facts["machine"])
        latencies, state, warned = _bench_in_turns(place, {i: bundle_of(i, wanted) for i in evaluated}, timing,
                                                   result.input_shape[0], rounds)
        return {"latencies": latencies, "record": {"cpu": facts["cpu"], "machine": facts["machine"],
                                                   "platform": wanted, "state": state, "warnings": warned}}

    ran = on_fleet.run("optimize", result.model, fleet.devices, time_there, timeout=fleet.timeout,
                       accept_new_host_key=fleet.accept_new_host_key)
    result.fleet = []
    for outcome in ran.outcomes:
        entry = {"name": outcome.device, "reached": outcome.reached, "error": outcome.error}
        if outcome.result is not None:
            entry.update(outcome.result["record"])
            for index, latency in outcome.result["latencies"].items():
                result.candidates[index].fleet_latency[outcome.device] = latency
        result.fleet.append(entry)


def package_for_fleet(result: OptimizeResult, evaluated: dict, budget: dict, folder: Path, threads: int,
                       labels: list[str] | None, pick: str, tell) -> None:
    """Bundles of a fleet's winners, each for its device's platform, once per (candidate, platform): every
    device's own (``pick`` "each-device"), or only the one artifact best where it is slowest; each device's
    record names the bundle meant for it."""
    from ..bundle import default_out, package

    timed = result.timed_devices
    wanted = {}
    for device in timed:
        index = device["winner"] if pick == "each-device" else result.winner
        if index is not None:
            wanted.setdefault((index, device["platform"]), []).append(device)
    for (index, platform), devices in wanted.items():
        artifact, run, _ = evaluated[index]
        tell(f"bundle of {result.candidates[index].name} for {platform}")
        try:
            made = package(artifact, run, platform=PlatformOptions(platform), tolerance=budget, threads=threads,
                           labels=labels, out=folder / default_out(artifact, platform).name)
        except (ParityFailure, UserError) as exc:
            for device in devices:
                device["bundle_error"] = str(exc)
            continue
        for device in devices:
            device["bundle"] = made.path.name
        result.bundle = result.bundle or made.path.name


def fleet_winners(result: OptimizeResult) -> None:
    """Each timed device's fastest candidate within the budget, and every candidate's latency where it is
    slowest (as its ``device_latency``: it ranks the one artifact best where it is slowest) when it was timed
    on every device that was."""
    timed = [d["name"] for d in result.timed_devices]
    for device in result.fleet:
        there = [i for i, c in enumerate(result.candidates) if c.passed and device["name"] in c.fleet_latency]
        device["winner"] = (min(there, key=lambda i: result.candidates[i].fleet_latency[device["name"]].p50_ms)
                            if there else None)
    for candidate in result.candidates:
        if timed and all(name in candidate.fleet_latency for name in timed):
            candidate.device_latency = max((candidate.fleet_latency[name] for name in timed), key=lambda l: l.p50_ms)
