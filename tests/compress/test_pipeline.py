import struct
import zlib
from unittest.mock import patch

import pytest
import torch

from squeezelab import create_model, fit, load_model
from squeezelab.checkpoint import load_checkpoint
from squeezelab.cli import main
from squeezelab.compress.container import read_sqz
from squeezelab.compress.load import load_sqz
from squeezelab.compress.pipeline import CompressConfig, compress
from squeezelab.compress.run import compress_run, decompress, fresh_meta
from squeezelab.compress.share import shared_layers
from squeezelab.errors import SqueezelabError
from squeezelab.train.trainer import Trainer


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A freshly initialised squeezenet_cifar, compressed without data (no fine-tuning)."""
    out = tmp_path_factory.mktemp("fresh")
    torch.manual_seed(0)
    model = create_model("squeezenet_cifar", num_classes=10)
    cfg = CompressConfig(density=0.33, prune_steps=2, conv_bits=6, fc_bits=6)
    result = compress(model, None, cfg, meta=fresh_meta(model, "squeezenet_cifar"), out_dir=out, verbose=0)
    return model.eval(), result, out


def test_every_stage_is_recorded_and_the_file_shrinks(fresh):
    _, result, out = fresh
    names = [s.name for s in result.stages]
    assert names[0] == "fp32 (safetensors)" and len(names) == 4  # no data: nothing to fine-tune the centroids on
    sizes = [s.bytes for s in result.stages]
    assert sizes[-1] < sizes[2] < sizes[0]  # shared+coded < pruned (fp32 values) < dense fp32
    assert result.stages[-1].ratio > 10
    assert result.stages[-1].density == pytest.approx(0.33, abs=0.005)
    assert (out / "model.sqz").stat().st_size == result.stages[-1].bytes
    assert (out / "pruned.sqz").stat().st_size == result.stages[2].bytes


def test_the_file_decodes_to_exactly_the_shared_weight_model(fresh):
    model, _, out = fresh
    decoded, meta = load_sqz(out / "model.sqz")
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(decoded(x), model(x))
    assert meta["model"]["name"] == "squeezenet_cifar"
    for layer in shared_layers(model).values():
        assert len(layer.codebook) <= 2**6


def test_ans_lands_within_2_percent_of_the_entropy_and_huffman_above_it(fresh):
    _, result, _ = fresh
    ans, huffman = result.coding["ans"], result.coding["huffman"]
    assert ans["indices"]["ratio"] < 1.02
    assert huffman["indices"]["coded_bits"] >= huffman["indices"]["entropy_bits"]
    assert huffman["file_bytes"] >= ans["file_bytes"]


def test_pruned_file_holds_the_pruned_weights_at_full_precision(fresh):
    model, _, out = fresh
    pruned, _ = load_sqz(out / "pruned.sqz")
    final = dict(model.named_modules())
    for name, module in pruned.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            kept = module.weight != 0
            assert torch.equal(kept, final[name].weight != 0)  # sharing keeps the pruning mask
            assert len(torch.unique(module.weight[kept])) > 2**6  # not yet shared


def test_fine_tuning_on_a_trained_run_measures_every_stage(tmp_path):
    run = tmp_path / "run"
    fit("dense_ae", "digits", epochs=2, batch_size=128, run_dir=run, verbose=0, model_kwargs={"code_size": 8})
    out = tmp_path / "compressed"
    result, summary = compress_run(
        str(run), out, CompressConfig(density=0.5, prune_steps=1, conv_bits=5, fc_bits=5), verbose=0
    )
    assert all(s.metric == "val_mse" for s in result.stages)
    assert result.stages[-1].value < 2 * result.stages[0].value  # fine-tuned, not wrecked
    # the .sqz opens like a checkpoint: load_model, and decompress into a safetensors checkpoint
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        expected = result.model.eval()(x)
        assert torch.equal(load_model(out / "model.sqz")(x), expected)
    weights = decompress(out / "model.sqz", tmp_path / "plain.safetensors")
    state, meta = load_checkpoint(weights)
    assert meta["data"]["input_shape"] == [1, 8, 8]
    with torch.no_grad():
        assert torch.equal(load_model(weights)(x), expected)
    assert (out / "report.md").read_text().count("|") > 20


def test_the_centroid_stage_fine_tunes_at_its_own_rate(tmp_path):
    run = tmp_path / "run"
    fit("dense_ae", "digits", epochs=1, batch_size=128, lr=2e-3, run_dir=run, verbose=0, model_kwargs={"code_size": 8})
    rates = []
    original = Trainer.__init__

    def spy(self, model, splits, recipe, *args, **kwargs):
        rates.append(recipe.optim.lr)
        original(self, model, splits, recipe, *args, **kwargs)

    cfg = CompressConfig(density=0.5, prune_steps=1, conv_bits=5, fc_bits=5, lr_scale=0.1, centroid_lr_scale=0.01)
    with patch.object(Trainer, "__init__", spy):
        compress_run(str(run), tmp_path / "out", cfg, verbose=0)
    # scoring and the pruning round at 0.1 x the run's rate, the centroid round at 0.01 x
    assert rates == pytest.approx([2e-4, 2e-4, 2e-5])


def test_squeezenet1_0_with_the_papers_setting_fits_in_0_47_mb(tmp_path):
    code = main(
        [
            "compress",
            "--model",
            "squeezenet1_0",
            "--density",
            "0.33",
            "--bits",
            "6",
            "--prune-steps",
            "1",
            "--out",
            str(tmp_path / "sq"),
            "--quiet",
        ]
    )
    assert code == 0
    assert (tmp_path / "sq" / "model.sqz").stat().st_size <= 470_000


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compress", "no/such/run"], "not found"),
        (["compress", "--model", "dense_ae", "--density", "1.5"], "density"),
        (["compress", "--model", "dense_ae", "--density", "0"], "density"),
        (["compress", "--model", "dense_ae", "--bits", "17"], "bits"),
        (["compress", "--model", "dense_ae", "--bits", "0"], "bits"),
        (["compress", "--model", "dense_ae", "--centroid-lr-scale", "0"], "learning-rate scale"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "model.sqz").exists()


def test_decompress_refuses_newer_and_corrupt_files_without_writing(fresh, tmp_path, capsys):
    _, _, out = fresh
    data = bytearray((out / "model.sqz").read_bytes())
    newer = bytearray(data)
    struct.pack_into("<H", newer, 4, 2)
    newer[-4:] = struct.pack("<I", zlib.crc32(bytes(newer[:-4])))
    (tmp_path / "newer.sqz").write_bytes(newer)
    corrupt = bytearray(data)
    corrupt[len(corrupt) // 2] ^= 0x10
    (tmp_path / "corrupt.sqz").write_bytes(corrupt)
    for name, message in (("newer.sqz", "version 2"), ("corrupt.sqz", "corrupt")):
        target = tmp_path / f"{name}.safetensors"
        assert main(["decompress", str(tmp_path / name), "-o", str(target)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
        assert not target.exists()


def test_compress_refuses_to_replace_a_compressed_model(fresh):
    _, _, out = fresh
    with pytest.raises(SqueezelabError, match="--overwrite"):
        compress_run(None, out, CompressConfig(), model_name="dense_ae", verbose=0)
    assert read_sqz(out / "model.sqz").model["name"] == "squeezenet_cifar"


def test_a_file_without_a_training_run_cannot_be_fine_tuned(fresh, tmp_path, capsys):
    _, _, out = fresh
    assert main(["compress", str(out / "model.sqz"), "--out", str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert "records no training run" in err and len(err.strip().splitlines()) == 1


def test_a_fine_tuned_run_is_fine_tuned_from_its_pruned_self(tmp_path):
    # The run's recipe names the run it started from; compressing must not restart from that one.
    first, second = tmp_path / "first", tmp_path / "second"
    options = {"epochs": 1, "batch_size": 128, "verbose": 0, "model_kwargs": {"code_size": 8}}
    fit("dense_ae", "digits", run_dir=first, **options)
    fit("dense_ae", "digits", run_dir=second, init_from=str(first), **options)
    cfg = CompressConfig(density=0.5, prune_steps=1, conv_bits=5, fc_bits=5)
    result, _ = compress_run(str(second), tmp_path / "out", cfg, verbose=0)
    assert [s.metric for s in result.stages] == ["val_mse"] * len(result.stages)
    assert result.stages[-1].value < 2 * result.stages[0].value
