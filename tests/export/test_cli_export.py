"""`squeezelab export` and `squeezelab predict` on exported files, through main(), with their user errors."""

import importlib.util
import json
import sys

import pytest
import torch

from squeezelab.cli import main

ONNX_INSTALLED = all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript"))
needs_onnx = pytest.mark.skipif(not ONNX_INSTALLED, reason="needs the onnx extra: pip install 'squeezelab[onnx]'")
FORMATS = [pytest.param("onnx", marks=needs_onnx), "torchscript"]
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def _predict(capsys, *args) -> tuple[list[dict], str]:
    """(JSON results, table) of one prediction, both through main()."""
    assert main(["predict", *args, "--json"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["predict", *args]) == 0
    return results, capsys.readouterr().out


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_classifier_predicts_the_checkpoints_labels(fmt, make_checkpoint, write_images, tmp_path, capsys):
    classes = ["cat", "dog", "emu", "fox", "gnu"]
    run = make_checkpoint("squeezenet_cifar", (3, 32, 32), classes, num_classes=5, stages=(1, 1))
    assert main(["export", str(run), "--format", fmt]) == 0
    out = capsys.readouterr().out
    exported = run / f"best{SUFFIX[fmt]}"
    assert f"wrote {exported}" in out and "input N x 3x32x32" in out and "verified" in out
    images = [str(p) for p in write_images(tmp_path / "images", ["a.png", "b.png", "c.png"])]
    expected, expected_table = _predict(capsys, str(run), *images, "--top-k", "3")
    got, table = _predict(capsys, str(exported), *images, "--top-k", "3")
    assert table == expected_table
    for mine, theirs in zip(got, expected, strict=True):
        assert [t["label"] for t in mine["top3"]] == [t["label"] for t in theirs["top3"]]
        for a, b in zip(mine["top3"], theirs["top3"], strict=True):
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)


@needs_onnx
def test_exported_autoencoder_reconstructs_as_the_checkpoint(make_checkpoint, write_images, tmp_path, capsys):
    run = make_checkpoint("conv_ae", (1, 28, 28))
    out = tmp_path / "ae.onnx"
    assert main(["export", str(run / "best.safetensors"), "-o", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    images = [str(p) for p in write_images(tmp_path, ["x.png", "y.png"], size=28, mode="L")]
    expected, _ = _predict(capsys, str(run), *images)
    got, _ = _predict(capsys, str(out), *images)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine["mse"] == pytest.approx(theirs["mse"], abs=1e-6)


def test_predict_takes_folders_batches_and_skips_bad_images(make_checkpoint, write_images, tmp_path, capsys):
    run = make_checkpoint("squeezenet_cifar", (3, 32, 32), ["a", "b"], num_classes=2, stages=(1,))
    model = tmp_path / "m.pt"
    assert main(["export", str(run), "--format", "torchscript", "-o", str(model)]) == 0
    folder = tmp_path / "photos"
    write_images(folder, ["1.png", "sub/2.jpg", "sub/deeper/3.png", ".hidden/4.png"])
    (folder / "notes.txt").write_text("not an image")
    (folder / "bad.png").write_bytes(b"not a png")
    assert main(["predict", str(model), str(folder), "--batch", "2"]) == 2
    assert "bad.png" in capsys.readouterr().err
    assert main(["predict", str(model), str(folder), "--batch", "2", "--on-bad-image", "skip", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("squeezelab: warning: skipped 1 unreadable") and "bad.png" in err
    images = [json.loads(line)["path"] for line in out.splitlines()]
    assert images == [str(folder / "1.png"), str(folder / "sub/2.jpg"), str(folder / "sub/deeper/3.png")]


def test_input_size_of_the_export(make_checkpoint, tmp_path, capsys):
    run = make_checkpoint("squeezenet1_1", (3, 64, 64), num_classes=3)
    assert main(["export", str(run), "--format", "torchscript", "--input", "48x48", "--no-verify"]) == 0
    assert "input N x 3x48x48" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["export", "{tmp}/nothing-here"], "checkpoint not found: {tmp}/nothing-here"),
        (["export", "{run}", "--input", "3x16x16"], "squeezenet1_1 cannot take input 3x16x16"),
        (["export", "{run}", "--input", "1x64x64"], "squeezenet1_1 cannot take input 1x64x64"),
        (["export", "{run}", "--input", "big"], "--input must look like CxHxW or HxW"),
        (["export", "{run}", "-o", "{tmp}/no/such/folder/m.onnx"], "the folder {tmp}/no/such/folder does not exist"),
        (["predict", "{tmp}/missing.onnx", "x.png"], "exported model not found: {tmp}/missing.onnx"),
        (["predict", "{tmp}/corrupt.pt", "x.png"], "cannot read {tmp}/corrupt.pt as a TorchScript file"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, message, make_checkpoint, tmp_path, capsys):
    run = make_checkpoint("squeezenet1_1", (3, 64, 64), num_classes=3)
    (tmp_path / "corrupt.pt").write_bytes(b"not a zip archive")
    fill = {"tmp": str(tmp_path), "run": str(run)}
    assert main([a.format(**fill) for a in args]) == 2
    err = capsys.readouterr().err
    assert message.format(**fill) in err
    assert err.count("\n") == 1


def test_unsupported_format_is_a_usage_error(make_checkpoint, capsys):
    run = make_checkpoint("dense_ae", (1, 28, 28))
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(run), "--format", "tflite"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'tflite'" in err and err.count("\n") == 1


def test_missing_onnx_extra_exits_2(make_checkpoint, monkeypatch, capsys):
    run = make_checkpoint("dense_ae", (1, 28, 28))
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    assert main(["export", str(run)]) == 2
    assert capsys.readouterr().err == (
        "squeezelab: error: ONNX export needs the onnx extra: pip install 'squeezelab[onnx]'\n"
    )


def test_predict_on_an_onnx_file_without_onnxruntime_exits_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "m.onnx").write_bytes(b"whatever")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert main(["predict", str(tmp_path / "m.onnx"), "x.png"]) == 2
    assert capsys.readouterr().err == (
        "squeezelab: error: running an ONNX file needs the onnx extra: pip install 'squeezelab[onnx]'\n"
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace is deprecated
def test_predict_refuses_a_file_squeezelab_did_not_export(tmp_path, capsys):
    traced = torch.jit.trace(torch.nn.Linear(2, 2), torch.rand(1, 2))
    torch.jit.save(traced, str(tmp_path / "other.pt"))
    assert main(["predict", str(tmp_path / "other.pt"), "x.png"]) == 2
    assert "other.pt carries no squeezelab metadata; make it with 'squeezelab export'" in capsys.readouterr().err


def test_failed_verification_exits_1_with_the_difference(make_checkpoint, monkeypatch, capsys):
    import squeezelab.export as export_module

    real = export_module.load_runner

    def doubled(fmt, source):
        runner = real(fmt, source)
        return lambda x: runner(x) * 2

    monkeypatch.setattr(export_module, "load_runner", doubled)
    run = make_checkpoint("dense_ae", (1, 28, 28))
    assert main(["export", str(run), "--format", "torchscript"]) == 1
    err = capsys.readouterr().err
    assert "does not match dense_ae in PyTorch: max abs difference" in err and "not written" in err
    assert not (run / "best.pt").exists()


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["export", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "fixed" in out
