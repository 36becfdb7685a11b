"""--weights as a URL or a published name: downloaded once into the user cache, proven before it is cached, one
line for every way it fails. Served by a real HTTP server on 127.0.0.1 (an ephemeral port); nothing else is
contacted: proxies are switched off and the offline case fails the name lookup before any packet leaves."""

import hashlib
import io
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from conftest import invoke

from uninext_deploy.errors import UserError
from uninext_deploy.models import create_model, download, published
from uninext_deploy.options import ModelOptions

MODEL = "test_convmlp"


def _saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def source():
    return create_model(MODEL, seed=5)


@pytest.fixture(scope="module")
def files(source):
    """Path -> body. The checkpoint is wrapped as training scripts save it, so the key mapping has work to do."""
    state = source.state_dict()
    tuned = create_model(MODEL, seed=6, num_classes=10).state_dict()
    good = _saved({"state_dict_ema": {f"module.{k}": v for k, v in state.items()}, "epoch": 300})
    return {"/good.pth": good, "/tuned.pth": _saved(tuned), "/corrupt.pth": b"<html>a login page</html>",
            "/dropped.pth": good}


@pytest.fixture
def server(files, tmp_path, monkeypatch):
    """The base URL of a server of ``files``, its request log, and a fresh user cache; stopped after the test."""
    requests = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # the dropped file's connection closes halfway through the body (HTTP/1.0: closed after the reply)
            self.wfile.write(body[: len(body) // 2] if self.path == "/dropped.pth" else body)

        def log_message(self, *args):
            pass

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(download, "TIMEOUT_S", 5)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _cached(tmp_path) -> list[str]:
    folder = tmp_path / "cache" / "uninext-deploy" / "weights"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _one_line_error(**options) -> str:
    with pytest.raises(UserError) as info:
        ModelOptions(MODEL, **options)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_url_is_downloaded_once_and_loads_through_the_key_mapping(server, source, tmp_path, capfd):
    base, requests = server
    url = f"{base}/good.pth"
    assert ModelOptions(MODEL, weights=url).weights == url
    line = capfd.readouterr().err
    assert line.startswith(f"downloaded {url}: ") and " MB in " in line and line.count("\n") == 1  # off a terminal
    loaded = create_model(MODEL, weights=url)
    cached = tmp_path / "cache/uninext-deploy/weights" / _cached(tmp_path)[0]
    (tmp_path / "local.pth").write_bytes(cached.read_bytes())
    local = create_model(MODEL, weights=str(tmp_path / "local.pth"))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x)) and torch.equal(local(x), source(x))
    assert requests == ["/good.pth"]  # the second use came from the cache
    assert len(_cached(tmp_path)) == 1 and _cached(tmp_path)[0].endswith("-good.pth")
    assert capfd.readouterr().err == ""  # a cache hit prints nothing


def test_a_pinned_url_is_checked(server, files, tmp_path):
    base, _ = server
    digest = hashlib.sha256(files["/good.pth"]).hexdigest()
    assert ModelOptions(MODEL, weights=f"{base}/good.pth#sha256={digest.upper()}").weights.endswith(digest.upper())
    wrong = "0" * 64
    error = _one_line_error(weights=f"{base}/tuned.pth#sha256={wrong}")
    assert error.startswith(f"{base}/tuned.pth has sha256 ") and f"not {wrong}; nothing was cached" in error
    assert _cached(tmp_path) == [p for p in _cached(tmp_path) if p.endswith("-good.pth")]


@pytest.mark.parametrize("path, said", [
    ("/corrupt.pth", "cannot read weights {url}: not a PyTorch state dict ("),
    ("/missing.pth", "cannot download {url}: the server answered 404 Not Found; check the URL"),
    ("/dropped.pth", ("cannot download {url}: the connection dropped before the whole file arrived; nothing was "
                      "cached")),
])
def test_a_broken_download_is_one_line_and_leaves_nothing(server, tmp_path, path, said):
    base, requests = server
    url = base + path
    assert said.format(url=url) in _one_line_error(weights=url)
    assert _cached(tmp_path) == [] and requests == [path]
    if path == "/corrupt.pth":  # not cached, so the next use downloads it again instead of trusting it
        _one_line_error(weights=url)
        assert requests == [path, path]


def test_a_refused_connection_and_no_network_are_said_so(server, monkeypatch, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/convmlp_s_imagenet.pth"
    assert f"cannot download {url}: 127.0.0.1:{port} refused the connection" in _one_line_error(weights=url)

    def offline(*args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    url = "https://weights.example.invalid/convmlp_s_imagenet.pth"
    assert "weights.example.invalid is out of reach: this machine looks offline" in _one_line_error(weights=url)
    assert _cached(tmp_path) == []


def test_a_published_name_sets_the_head_and_names_its_classes(server, monkeypatch, tmp_path):
    base, requests = server
    entry = published.Published(MODEL, "in1k_ft_cifar10", f"{base}/tuned.pth", 10, "cifar10_labels.txt")
    monkeypatch.setitem(published.PUBLISHED, entry.name, entry)
    options = ModelOptions(MODEL, weights="CIFAR10")
    assert options.weights == "test_convmlp.in1k_ft_cifar10"
    model = create_model(MODEL, weights=options.weights)
    assert model.num_classes == 10 and model(torch.zeros(1, 3, 64, 64)).shape == (1, 10)
    assert requests == ["/tuned.pth"]
    assert entry.class_names()[:3] == ["airplane", "automobile", "bird"]
    assert "has a 10-class head, not 100; drop --num-classes" in _one_line_error(weights="cifar10", num_classes=100)


def test_every_published_checkpoint_is_a_convmlp_with_labels_for_its_head():
    assert len(published.PUBLISHED) == 12
    for entry in published.PUBLISHED.values():
        assert entry.url.startswith("https://shi-labs.com/projects/convmlp/checkpoints/convmlp_")
        assert len(entry.class_names()) == entry.num_classes and all(entry.class_names())
    assert published.PUBLISHED["convmlp_l.in1k_ft_flowers102"].url.endswith("/convmlp_l_flowers102.pth")


@pytest.mark.parametrize("model, weights, said", [
    ("uninext_t", "imagenet", ("UniNeXt authors publish no checkpoint (jianlong-yuan/UniNeXt links none); pass one "
                               "you have with --weights path/to/file.pth")),
    ("uninet_b1", "in1k", "in a Google Drive folder linked from Sense-X/UniNet's README (https://drive.google.com/"),
    ("convmlp_s", "convmlp_m.in1k", "are convmlp_m's, not convmlp_s's: pass -m convmlp_m, or --weights in1k"),
    ("convmlp_s", "https://host/w.pth#md5=0", "the only fragment taken is #sha256= with the file's 64 hex digits"),
    ("convmlp_s", "http://example.com/w.pth", "plain http can be altered on the way; use https, or pin the file"),
    ("convmlp_s", "ftp://example.com/w.pth", "only http(s) URLs are downloaded"),
])
def test_names_and_urls_that_cannot_be_fetched_are_one_line_before_any_request(model, weights, said):
    with pytest.raises(UserError) as info:
        ModelOptions(model, weights=weights)
    assert said in str(info.value) and "\n" not in str(info.value)


def test_a_fine_tune_brings_its_preprocessing_and_class_names_into_the_artifact(server, monkeypatch, tmp_path):
    """A CIFAR-10 fine-tune was trained on its dataset's mean and std without a crop: the artifact's manifest (so
    run.py on the device) and parity preprocess with those; its bundle names CIFAR-10's classes; an artifact made
    from a name or URL is re-opened from the cache (parity --artifact), not refused as a missing file."""
    from uninext_deploy import api
    from uninext_deploy.bundle import default_labels
    from uninext_deploy.pipeline import model_of

    base, requests = server
    entry = published.Published(MODEL, "in1k_ft_cifar10", f"{base}/tuned.pth", 10, "cifar10_labels.txt",
                                preprocessing=published.PUBLISHED["convmlp_s.in1k_ft_cifar10"].preprocessing)
    monkeypatch.setitem(published.PUBLISHED, entry.name, entry)
    assert create_model(MODEL, weights="cifar10").spec.mean == (0.4914, 0.4822, 0.4465)  # the API takes the tag
    artifact = api.export(ModelOptions(MODEL, weights="cifar10"), "ort", out=tmp_path / "a")
    pre = artifact.manifest["preprocessing"]
    assert pre["mean"] == [0.4914, 0.4822, 0.4465] and pre["resize_exact"] and pre["interpolation"] == "bicubic"
    assert default_labels(artifact.manifest)[:2] == ["airplane", "automobile"]
    assert model_of(artifact).weights == "test_convmlp.in1k_ft_cifar10" and requests == ["/tuned.pth"]


def test_the_cli_keeps_the_url_whole(server, tmp_path):
    base, _ = server
    result = invoke("export", "-m", MODEL, "--weights", f"{base}/missing.pth", "--out", str(tmp_path / "a"))
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    said = (f"error: cannot download {base}/missing.pth: the server answered 404 Not Found; check the URL, or "
            "download the file another way and pass --weights path/to/file.pth")
    assert result.returncode == 2 and errors == [said]
    assert not (tmp_path / "a").exists()
