"""The weights registry: cards, sha256 refusal, create_model(weights=...), MODEL:WEIGHTS in every command."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

import squeezelab
from squeezelab.cli import main
from squeezelab.codec.api import decode_bytes, encode_image, load_codec, shipped_codecs
from squeezelab.codec.rd import psnr
from squeezelab.errors import ConfigError, FileFormatError
from squeezelab.weights import list_weights, package_weights, registry, verify_weights

CLASSES = ["cat", "dog", "emu", "fox", "gnu"]
SPEC = "squeezenet_cifar:toy"


@pytest.fixture
def shipped(make_checkpoint, tmp_path, monkeypatch):
    """A test-only registry holding one small classifier, SPEC, as the package would ship it."""
    run = make_checkpoint("squeezenet_cifar", (3, 32, 32), CLASSES, num_classes=5, stages=(1, 1))
    folder = tmp_path / "files"
    card = package_weights(
        run,
        folder,
        "toy",
        trained_on="nothing (untrained)",
        metrics={"val_acc1": 0.2},
        metrics_command="squeezelab evaluate squeezenet_cifar:toy --split val",
        recipe=["squeezelab train squeezenet_cifar --epochs 0"],
        training={"seconds": 0, "machine": "test"},
        default=True,
    )
    monkeypatch.setattr(registry, "WEIGHTS_DIR", folder)
    return run, card


def test_card_describes_the_file_and_loads_the_same_model(shipped):
    run, card = shipped
    (entry,) = list_weights()
    assert entry.spec == SPEC and entry.default and entry.bytes == entry.path.stat().st_size
    model = squeezelab.create_model("squeezenet_cifar", weights="toy")
    assert model.weights_card == entry and not model.training
    same = squeezelab.create_model("squeezenet_cifar", weights=True, num_classes=5)
    original = squeezelab.load_model(run)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), original(x)) and torch.equal(same(x), original(x))
    assert verify_weights() == [(entry, None)]


def test_half_precision_weights_load_into_fp32(make_checkpoint, tmp_path, monkeypatch):
    run = make_checkpoint("conv_ae", (1, 28, 28), code_size=8)
    package_weights(
        run, tmp_path, "half", trained_on="-", metrics={}, metrics_command="-", recipe=[], training={}, half=True
    )
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    model = squeezelab.create_model("conv_ae", weights="half")
    original = squeezelab.load_model(run)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert next(model.parameters()).dtype == torch.float32
        assert (model(x) - original(x)).abs().max() < 1e-2
    assert (tmp_path / "conv_ae.half.safetensors").stat().st_size < 0.6 * (run / "best.safetensors").stat().st_size


def test_unknown_weights_and_other_options_are_refused(shipped):
    with pytest.raises(ConfigError, match="has no weights 'cifar100'; it has: toy"):
        squeezelab.create_model("squeezenet_cifar", weights="cifar100")
    with pytest.raises(ConfigError, match="has no shipped weights"):
        squeezelab.create_model("alexnet", weights=True)
    with pytest.raises(ConfigError, match="num_classes=5"):
        squeezelab.create_model("squeezenet_cifar", weights="toy", num_classes=10)


@pytest.mark.parametrize("where", [0, -1, "middle"])
def test_a_flipped_byte_is_refused_with_one_line(shipped, where, capsys, write_images, tmp_path):
    _, card = shipped
    path = card.parent / "squeezenet_cifar.toy.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if where == "middle" else where] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="does not match the sha256 on its card.*reinstall"):
        squeezelab.create_model("squeezenet_cifar", weights="toy")
    (image,) = write_images(tmp_path / "images", ["a.png"])
    assert main(["predict", SPEC, str(image)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "reinstall" in err
    assert main(["weights", "verify"]) == 2
    assert "FAILED" in capsys.readouterr().out


def test_a_damaged_card_is_refused(shipped):
    _, card = shipped
    card.write_text(card.read_text()[:-20])
    registry._cards.cache_clear()
    with pytest.raises(FileFormatError, match="weights card .* is damaged.*reinstall"):
        list_weights()


def test_predict_json_lines_from_shipped_weights(shipped, write_images, tmp_path, capsys):
    images = [str(p) for p in write_images(tmp_path / "images", ["b.png", "a.png", "c.jpg"])]
    assert main(["predict", SPEC, *images, "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in lines] == images
    for r in lines:
        assert r["label"] in CLASSES and r["label"] == CLASSES[r["index"]]
        assert r["top5"][0]["probability"] == r["probability"]
        assert len(r["top5"]) == 5 and sum(t["probability"] for t in r["top5"]) == pytest.approx(1, abs=1e-5)
    assert main(["predict", SPEC, *images]) == 0
    assert "top-5" in capsys.readouterr().out


def test_evaluate_takes_the_spec_and_its_held_out_split(make_checkpoint, tmp_path, monkeypatch, capsys):
    run = make_checkpoint("conv_ae", (1, 28, 28), code_size=8)
    card = package_weights(
        run, tmp_path, "digits", trained_on="-", metrics={}, metrics_command="-", recipe=[], training={}
    )
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    assert main(["evaluate", "conv_ae:digits", "--split", "val"]) == 2
    assert "records no training run" in capsys.readouterr().err
    entry = json.loads(card.read_text())
    card.write_text(json.dumps({**entry, "config": {"validation_split": 0.2, "seed": 3}}))
    registry._cards.cache_clear()
    assert main(["evaluate", "conv_ae:digits", "--split", "val", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"] == round(0.2 * 1797) and 0 < result["mse"] < 1
    assert main(["evaluate", str(run), "--data", "digits", "--split", "test"]) == 2


def test_export_and_profile_take_the_spec(shipped, tmp_path, capsys, monkeypatch):
    assert main(["profile", SPEC, "--json", "--repeats", "1", "--batch", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == sum(
        p.numel() for p in squeezelab.create_model("squeezenet_cifar", weights="toy").parameters()
    )
    exported = tmp_path / "toy.pt"
    assert main(["export", SPEC, "--format", "torchscript", "-o", str(exported)]) == 0
    assert exported.exists() and "verified" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)  # without -o, shipped weights export to the working folder, named by their spec
    assert main(["export", SPEC, "--format", "torchscript"]) == 0
    assert (tmp_path / "squeezenet_cifar.toy.pt").is_file()
    assert main(["profile", SPEC, "--input", "3x64x64"]) == 2


def test_weights_list_and_recipe(shipped, capsys):
    assert main(["weights", "list", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert (entry["model"], entry["name"], entry["default"]) == ("squeezenet_cifar", "toy", True)
    assert main(["weights", "recipe", SPEC]) == 0
    assert "squeezelab train squeezenet_cifar --epochs 0" in capsys.readouterr().out
    assert main(["weights", "recipe", "nothing"]) == 2
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["squeezenet_cifar"]["weights"] == {"toy": {"val_acc1": 0.2}} and rows["alexnet"]["weights"] == {}


def test_the_shipped_files_match_their_cards_and_load():
    registry._cards.cache_clear()
    assert verify_weights() and all(problem is None for _, problem in verify_weights())
    model = squeezelab.create_model("squeezenet_cifar", weights=True)  # the default: the Deep Compression file
    assert model.weights_card.path.suffix == ".sqz" and model.weights_card.bytes <= 400_000
    assert len(model.weights_card.data["classes"]) == 10 and model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_the_shipped_codec_comes_first_and_compresses_an_image_it_never_saw():
    registry._cards.cache_clear()
    assert shipped_codecs()[0] == {"model": "conv_codec", "qualities": [1, 2, 3, 4]}
    ramp = np.linspace(0, 255, 48)
    image = np.stack([np.add.outer(ramp, ramp) / 2, np.add.outer(ramp, -ramp) / 2 + 128, np.full((48, 48), 90.0)], -1)
    image = np.round(image).astype(np.uint8)
    sizes = []
    for quality in (1, 4):
        codec = load_codec(quality=quality)
        data = encode_image(codec, image)
        decoded = decode_bytes(codec, data)
        assert decoded.shape == image.shape and psnr(image, decoded) > 30  # an untrained codec reads about 10 dB
        sizes.append(len(data))
    assert sizes[0] < sizes[1] < image.size // 8  # higher quality, more bits; both far below raw


@pytest.mark.slow
def test_the_wheel_carries_every_shipped_file(tmp_path):
    root = registry.WEIGHTS_DIR.parents[3]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(root),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("squeezelab-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"squeezelab/weights/files/{p.name}" for p in registry.WEIGHTS_DIR.iterdir()}
    assert shipped and shipped <= names
    # A few MB: two SqueezeNet files, four autoencoders and four codec qualities; weights are not a download here.
    assert sum(p.stat().st_size for p in registry.WEIGHTS_DIR.iterdir()) <= 6_000_000
