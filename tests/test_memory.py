"""Device memory of an artifact: measured in a fresh process running it with its runtime alone."""

from uninext_deploy.memory import footprint


def test_footprint_counts_the_loaded_model_not_the_host_process(convmlp_s_artifact):
    mem = footprint(convmlp_s_artifact, threads=1)
    size = sum(e["bytes"] for e in convmlp_s_artifact.manifest["files"].values() if e["role"] == "model") / 1e6
    assert mem["artifact_mb"] == round(size, 2) and 30 < size < 40  # ConvMLP-S's 9 M float32 weights
    # the weights are resident once loaded; the host's torch (hundreds of MB) is not counted
    assert mem["peak_rss_mb"] - mem["runtime_rss_mb"] > 0.8 * size
    assert 10 < mem["runtime_rss_mb"] < 200 and mem["peak_rss_mb"] < 600


def test_profile_and_optimize_show_memory_next_to_latency(optimized):
    _, stdout, result = optimized
    timed = [c for c in result.candidates if c.latency]
    assert timed and all(c.peak_rss_mb > c.artifact_mb * 0.5 and c.artifact_mb > 0 for c in timed)
    assert "peak RSS MB" in stdout and "size MB" in stdout
