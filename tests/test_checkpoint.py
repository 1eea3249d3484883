import json

import pytest
import torch

from squeezelab.checkpoint import load_checkpoint, load_optimizer_state, load_weights, open_checkpoint, save_checkpoint
from squeezelab.errors import FileFormatError, SqueezelabError
from squeezelab.models import create_model
from squeezelab.version import __version__


def test_round_trip_weights_meta_and_optimizer(tmp_path):
    torch.manual_seed(0)
    model = create_model("squeeze_ae", img_size=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(4, 1, 8, 8)
    torch.nn.functional.mse_loss(model(x), x).backward()
    optimizer.step()
    save_checkpoint(tmp_path / "last", model, {"epoch": 3, "model": model.squeezelab_spec}, optimizer)

    state, meta = load_checkpoint(tmp_path / "last.safetensors")
    assert meta["epoch"] == 3 and meta["format"] == "squeezelab-checkpoint"
    clone = load_weights(create_model("squeeze_ae", img_size=8), state, "ckpt")
    torch.testing.assert_close(clone(x), model(x))

    fresh = torch.optim.Adam(clone.parameters(), lr=1e-3)
    load_optimizer_state(tmp_path / "last", fresh, meta)
    for p, q in zip(model.parameters(), clone.parameters(), strict=True):
        a, b = optimizer.state[p], fresh.state[q]
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key])


def test_torn_write_is_detected(tmp_path):
    model = create_model("dense_ae", img_size=8)
    save_checkpoint(tmp_path / "last", model, {"epoch": 2})
    sidecar = tmp_path / "last.json"
    meta = json.loads(sidecar.read_text())
    meta["epoch"] = 3
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(SqueezelabError, match="different epochs"):
        load_checkpoint(tmp_path / "last.safetensors")


def test_mismatched_model_is_named(tmp_path):
    save_checkpoint(tmp_path / "c", create_model("dense_ae", img_size=8), {"epoch": 1})
    state, _ = load_checkpoint(tmp_path / "c.safetensors")
    with pytest.raises(SqueezelabError, match=r"encoder.0.weight has shape \(64, 64\), the model expects \(64, 784\)"):
        load_weights(create_model("dense_ae"), state, "c")
    del state["decoder.0.bias"]
    with pytest.raises(SqueezelabError, match=r"missing \['decoder.0.bias'\]"):
        load_weights(create_model("dense_ae", img_size=8), state, "c")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"\xff" * 64])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, content):
    save_checkpoint(tmp_path / "c", create_model("dense_ae", img_size=8), {"epoch": 1})
    (tmp_path / "c.safetensors").write_bytes(content)
    with pytest.raises(SqueezelabError, match="cannot read"):
        load_checkpoint(tmp_path / "c.safetensors")


def test_missing_checkpoint_and_sidecar(tmp_path):
    with pytest.raises(SqueezelabError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(SqueezelabError, match="holds no checkpoint"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path / "c", create_model("dense_ae", img_size=8), {"epoch": 1})
    (tmp_path / "c.json").unlink()
    with pytest.raises(SqueezelabError, match="no sidecar"):
        load_checkpoint(tmp_path / "c.safetensors")


def _saved_classifier(tmp_path, **data):
    model = create_model("squeezenet_cifar", num_classes=3, in_chans=1)
    meta = {
        "epoch": 1,
        "model": model.squeezelab_spec,
        "data": {"input_shape": [1, 32, 32], "classes": ["a", "b", "c"], "mean": [0.5], "std": [0.25], **data},
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    save_checkpoint(tmp_path / "best", model, meta)
    return tmp_path


def test_a_sidecar_is_checked_against_its_weights(tmp_path):
    assert open_checkpoint(_saved_classifier(tmp_path)).classes == ["a", "b", "c"]
    cases = [
        ({"classes": ["a", "b"]}, "names 2 classes, the model has 3 outputs"),
        ({"input_shape": [1, 0, 32]}, r"gives the input shape \[1, 0, 32\], not three positive sizes"),
        ({"input_shape": [3, 32, 32]}, "gives 3-channel inputs, the model takes 1"),
        ({"std": [0.0]}, "every value must be positive"),
        ({"mean": [0.5, 0.5]}, "not 1 numbers"),
    ]
    for data, message in cases:
        run = _saved_classifier(tmp_path / str(len(message)), **data)
        with pytest.raises(FileFormatError, match=message):
            open_checkpoint(run)


def test_a_newer_format_version_is_refused_naming_the_writer(tmp_path):
    run = _saved_classifier(tmp_path)
    sidecar = run / "best.json"
    meta = json.loads(sidecar.read_text())
    assert meta["version"] == 1 and meta["squeezelab_version"] == __version__
    sidecar.write_text(json.dumps({**meta, "version": 99, "squeezelab_version": "9.0.0"}))
    with pytest.raises(
        FileFormatError, match=r"format version 99, written by squeezelab 9\.0\.0; .* upgrade squeezelab"
    ):
        load_checkpoint(run)
    sidecar.write_text(json.dumps({**meta, "version": "one"}))
    with pytest.raises(FileFormatError, match="has no valid format version"):
        load_checkpoint(run)


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_a_save_cut_short_keeps_the_previous_set_whole(tmp_path, monkeypatch, fail_at):
    model = create_model("dense_ae", img_size=8)
    optimizer = torch.optim.Adam(model.parameters())
    save_checkpoint(tmp_path / "last", model, {"epoch": 1, "model": model.squeezelab_spec}, optimizer)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls = []

    def killed(fd):  # the process dies while the set's files are being written
        calls.append(fd)
        if len(calls) == fail_at:
            raise KeyboardInterrupt

    monkeypatch.setattr("squeezelab.io.os.fsync", killed)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "last", model, {"epoch": 2, "model": model.squeezelab_spec}, optimizer)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.undo()
    state, meta = load_checkpoint(tmp_path / "last.safetensors")
    load_optimizer_state(tmp_path / "last", torch.optim.Adam(model.parameters()), meta)
    assert meta["epoch"] == 1
