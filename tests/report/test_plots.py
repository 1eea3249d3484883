import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from squeezelab.report.plots import _is_metric, plot_bars, plot_confusion, plot_curves, plot_reconstructions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, folder):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert 300 <= width <= 4000 and 150 <= height <= 4000
    assert list(folder.iterdir()) == [path], "only the PNG may be left in the folder, no temporary files"


def classifier_history(epochs):
    return [
        {"epoch": e, "train_loss": 2 / e, "val_loss": 2.2 / e, "val_acc1": 0.5 + 0.04 * e, "lr": 0.1, "seconds": 9.5}
        for e in range(1, epochs + 1)
    ]


@pytest.mark.parametrize("epochs", [1, 5])
def test_curves(tmp_path, epochs):
    path = plot_curves(classifier_history(epochs), tmp_path / "curves.png", title="squeezenet_cifar")
    assert path == tmp_path / "curves.png"
    assert_png(path, tmp_path)


def test_curves_skip_missing_none_and_nan(tmp_path):
    history = classifier_history(4)
    history[1]["val_loss"] = None
    history[2]["val_acc1"] = math.nan
    del history[3]["train_loss"]
    for entry in history:
        entry["val_acc5"] = None  # never recorded: not drawn at all
    assert_png(plot_curves(history, tmp_path / "curves.png"), tmp_path)


def test_curves_of_an_autoencoder_without_epoch_keys(tmp_path):
    history = [{"train_loss": 0.05 / e, "val_psnr": 18.0 + e, "val_ssim": 0.6 + 0.05 * e} for e in (1, 2, 3)]
    assert_png(plot_curves(history, tmp_path / "curves.png"), tmp_path)


def test_curves_with_nothing_to_draw(tmp_path):
    assert_png(plot_curves([{"epoch": 1, "val_loss": math.nan}], tmp_path / "curves.png"), tmp_path)


def test_bookkeeping_keys_are_not_metrics():
    keys = ["val_acc1", "val_psnr", "val_ssim", "epoch", "lr", "seconds", "epoch_time", "val_loss"]
    assert [k for k in keys if _is_metric(k)] == ["val_acc1", "val_psnr", "val_ssim"]


@pytest.mark.parametrize("as_numpy", [False, True])
def test_confusion(tmp_path, as_numpy):
    confusion = torch.tensor([[5, 1, 0], [2, 7, 1], [0, 0, 0]])  # class 2 has no samples
    matrix = confusion.numpy() if as_numpy else confusion
    assert_png(plot_confusion(matrix, ["cat", "dog", "frog"], tmp_path / "confusion.png"), tmp_path)


def test_confusion_with_many_classes(tmp_path):
    confusion = np.random.default_rng(0).integers(0, 10, size=(50, 50))
    assert_png(plot_confusion(confusion, [f"c{i}" for i in range(50)], tmp_path / "confusion.png"), tmp_path)


def test_confusion_rejects_mismatched_class_names(tmp_path):
    with pytest.raises(ValueError, match="3 class names"):
        plot_confusion(torch.zeros(2, 2), ["a", "b", "c"], tmp_path / "confusion.png")


@pytest.mark.parametrize("channels", [1, 3])
def test_reconstructions(tmp_path, channels):
    x = torch.rand(10, channels, 28, 28)
    reconstructions = {"dense_ae": x + 0.2 * torch.randn_like(x), "squeeze_ae": x * 0.5}  # out of [0, 1]: clamped
    path = plot_reconstructions(x, reconstructions, tmp_path / "reconstructions.png", n=6, title="test set")
    assert_png(path, tmp_path)


def test_reconstructions_from_one_tensor_and_fewer_images_than_n(tmp_path):
    x = torch.rand(3, 1, 8, 8)
    assert_png(plot_reconstructions(x, x.flip(-1), tmp_path / "reconstructions.png", n=8), tmp_path)


def test_reconstructions_reject_other_channel_counts(tmp_path):
    with pytest.raises(ValueError, match="1 or 3"):
        plot_reconstructions(torch.rand(2, 2, 8, 8), torch.rand(2, 2, 8, 8), tmp_path / "reconstructions.png")


@pytest.mark.parametrize("log", [False, True])
def test_bars(tmp_path, log):
    values = {"squeezenet1_1": 1_235_496, "alexnet": 61_100_840, "failed": math.nan, "skipped": None}
    path = plot_bars(values, tmp_path / "params.png", xlabel="parameters", title="Model size", log=log)
    assert_png(path, tmp_path)


def test_log_bars_need_positive_values(tmp_path):
    with pytest.raises(ValueError, match="positive"):
        plot_bars({"a": 0.0}, tmp_path / "bars.png", xlabel="latency (ms)", log=True)


def test_writes_into_new_folders_and_over_old_files(tmp_path):
    path = tmp_path / "figures" / "bars.png"
    plot_bars({"a": 1.0}, path, xlabel="latency (ms)")
    plot_bars({"a": 1.0, "b": 2.0}, path, xlabel="latency (ms)")
    assert_png(path, tmp_path / "figures")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = plot_bars({"a": 1.0}, tmp_path / "bars.png", xlabel="latency (ms)")
    old = path.read_bytes()

    def fail_halfway(self, file, **kwargs):
        file.write(PNG_SIGNATURE)
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        plot_bars({"a": 2.0}, path, xlabel="latency (ms)")
    assert path.read_bytes() == old
    assert list(tmp_path.iterdir()) == [path]
