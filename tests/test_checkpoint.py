import json

import pytest
import torch

from squeezelab.checkpoint import load_checkpoint, load_optimizer_state, load_weights, save_checkpoint
from squeezelab.errors import SqueezelabError
from squeezelab.io import atomic_write
from squeezelab.models import create_model


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "f.json"
    atomic_write(target, "old")

    with pytest.raises(TypeError):
        atomic_write(target, 12345)  # not bytes: fails while writing
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


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
