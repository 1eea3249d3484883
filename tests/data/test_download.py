import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest

from squeezelab.data import DATASET_URLS, DataError, download, load_dataset


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server: (folder it serves, its base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=served))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("no_proxy", "*")
    yield served, f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    httpd.server_close()


def _point_mnist_at(monkeypatch, base: str, md5s: dict[str, str] | None = None) -> None:
    table = {name: (base + name, (md5s or {}).get(name, md5)) for name, (_, md5) in DATASET_URLS["mnist"].items()}
    monkeypatch.setitem(DATASET_URLS, "mnist", table)


def test_published_checksums_are_listed():
    assert DATASET_URLS["cifar10"]["cifar-10-python.tar.gz"] == (
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
    )
    assert DATASET_URLS["mnist"]["train-images-idx3-ubyte.gz"][1] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert len(DATASET_URLS["fashion-mnist"]) == 4


def test_offline_download_is_one_line_saying_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "*")
    _point_mnist_at(monkeypatch, "http://127.0.0.1:9/")  # nothing listens on the discard port
    target = tmp_path / "mnist"
    with pytest.raises(DataError) as caught:
        load_dataset(f"mnist:{target}", download=True, progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert "could not download http://127.0.0.1:9/train-images-idx3-ubyte.gz" in message
    assert f"put them in {target}" in message
    for name in DATASET_URLS["mnist"]:
        assert name in message
    assert list(target.iterdir()) == []  # no partial file left behind


def test_checksum_mismatch_keeps_nothing(tmp_path, monkeypatch, server):
    served, base = server
    (served / "train-images-idx3-ubyte.gz").write_bytes(b"not what was published")
    _point_mnist_at(monkeypatch, base)
    with pytest.raises(DataError, match=r"downloaded with MD5 \w+, but the published file has f68b3c2d"):
        download("mnist", tmp_path / "mnist", ["train-images-idx3-ubyte.gz"], progress=False)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_download_fetches_only_missing_files(tmp_path, monkeypatch, server, make_mnist):
    served, base = server
    arrays = make_mnist(served, n_train=6, n_test=3)
    md5s = {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in served.iterdir()}
    _point_mnist_at(monkeypatch, base, md5s)
    target = tmp_path / "mnist"
    mine = make_mnist(target, n_train=4, n_test=0)  # the user's own training files, not the published ones
    mine_bytes = (target / "train-images-idx3-ubyte.gz").read_bytes()

    splits = load_dataset(f"mnist:{target}", download=True, progress=False)
    assert (target / "train-images-idx3-ubyte.gz").read_bytes() == mine_bytes
    assert splits.train.labels.tolist() == mine["train"][1].tolist()
    assert splits.test.labels.tolist() == arrays["test"][1].tolist()
    assert np.array_equal(splits.test.images[:, 0].numpy(), arrays["test"][0])
    assert sorted(p.name for p in target.iterdir()) == sorted(md5s)
    assert download("mnist", target, progress=False) == []  # everything is there now


def test_unknown_dataset_or_file():
    with pytest.raises(DataError, match="cannot download 'imagenet'"):
        download("imagenet", "/tmp/x")
    with pytest.raises(DataError, match="mnist has no file readme.txt"):
        download("mnist", "/tmp/x", ["readme.txt"])
