"""The train / evaluate / predict commands end to end on the bundled digits, and their user errors."""

import json

import numpy as np
import pytest
from PIL import Image

from squeezelab.cli import main
from squeezelab.errors import TrainingDiverged

SMALL = ["--arg", "stem_channels=16", "--arg", "base_e=32", "--arg", "incr_e=16", "--arg", "stages=(1,1,2)"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small classifier run and one autoencoder run, shared by the tests below."""
    out = tmp_path_factory.mktemp("runs")
    assert (
        main(
            [
                "train",
                "squeezenet_cifar",
                "--data",
                "digits",
                "--image-size",
                "16",
                "--epochs",
                "2",
                "--batch-size",
                "64",
                "--lr",
                "0.003",
                "--name",
                "clf",
                "--out-dir",
                str(out),
                "--quiet",
                *SMALL,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                "dense_ae",
                "--data",
                "digits",
                "--image-size",
                "16",
                "--epochs",
                "2",
                "--name",
                "ae",
                "--out-dir",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    return out


def test_train_writes_the_run_directory(trained):
    run = trained / "clf"
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "squeezenet_cifar" and config["model_kwargs"]["base_e"] == 32
    assert config["model_kwargs"]["num_classes"] == 10 and config["model_kwargs"]["in_chans"] == 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert (run / "best.safetensors").exists() and (run / "plots" / "curves.png").exists()


def test_resume_continues_to_more_epochs(trained, capsys):
    assert main(["train", "--resume", str(trained / "ae"), "--epochs", "3", "--quiet"]) == 0
    assert len((trained / "ae" / "metrics.jsonl").read_text().splitlines()) == 3
    assert "after 3 epochs" in capsys.readouterr().out
    assert json.loads((trained / "ae" / "config.json").read_text())["epochs"] == 3


def test_evaluate_classifier_on_held_out_split(trained, capsys):
    assert main(["evaluate", str(trained / "clf"), "--split", "val", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"] == 180 and 0 <= result["acc1"] <= result["acc5"] <= 1
    assert len(result["per_class_accuracy"]) == 10 and len(result["confusion_matrix"]) == 10
    assert sum(map(sum, result["confusion_matrix"])) == 180
    assert (trained / "clf" / "confusion-val.png").exists()


def test_evaluate_test_time_views_default_to_the_run_and_can_be_asked_for(trained, capsys):
    assert main(["evaluate", str(trained / "clf"), "--split", "val", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["tta_flip"] is False and plain["tta_translate"] is False
    assert main(["evaluate", str(trained / "clf"), "--split", "val", "--json", "--tta-flip", "--tta-translate"]) == 0
    views = json.loads(capsys.readouterr().out)
    assert views["tta_flip"] is True and views["tta_translate"] is True and views["samples"] == plain["samples"]


def test_evaluate_autoencoder_table(trained, capsys):
    assert main(["evaluate", str(trained / "ae" / "best.safetensors"), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and "SSIM" in out
    assert (trained / "ae" / "reconstructions-val.png").exists()


def _digit_png(path, size=20):
    pixels = np.zeros((size, size), np.uint8)
    pixels[4:-4, size // 2 - 2 : size // 2 + 2] = 255  # a "1"
    Image.fromarray(pixels).save(path)
    return path


def test_predict_classifier_and_autoencoder(trained, tmp_path, capsys):
    images = [str(_digit_png(tmp_path / "one.png")), str(_digit_png(tmp_path / "other.png", 40))]
    assert main(["predict", str(trained / "clf"), *images, "--top-k", "3", "--json"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in results] == images
    assert all(len(r["top3"]) == 3 for r in results)
    assert all(sum(t["probability"] for t in r["top3"]) <= 1 + 1e-6 for r in results)
    assert all((r["label"], r["index"], r["probability"]) == tuple(r["top3"][0].values()) for r in results)
    assert main(["predict", str(trained / "ae"), *images]) == 0
    assert "PSNR" in capsys.readouterr().out


def test_predict_skips_bad_images_when_asked(trained, tmp_path, capsys):
    good = str(_digit_png(tmp_path / "good.png"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    assert main(["predict", str(trained / "clf"), good, str(bad)]) == 2
    assert "bad.png" in capsys.readouterr().err
    assert main(["predict", str(trained / "clf"), good, str(bad), "--on-bad-image", "skip", "--json"]) == 0
    assert [json.loads(line)["path"] for line in capsys.readouterr().out.splitlines()] == [good]


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--preset", "fast-everything"], "unknown preset 'fast-everything'"),
        (["train", "dense_ae", "--data", "mnist:/nonexistent/mnist", "--epochs", "1"], "/nonexistent/mnist"),
        (["train", "dense_ae", "--data", "nonsense:xyz"], "nonsense"),
        (["train", "dense_ae", "--data", "digits", "--epochs", "0"], "epochs must be >= 1"),
        (["evaluate", "/nonexistent/run"], "not found"),
        (["train", "--resume", "/nonexistent/run"], "not a run directory"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_train_a_student_from_teacher_runs(trained, capsys):
    student = ["train", "squeezenet_cifar", "--data", "digits", "--image-size", "16", "--epochs", "1", *SMALL]
    teachers = f"{trained / 'clf'},{trained / 'clf' / 'last.safetensors'}"
    assert main([*student, "--teachers", teachers, "--name", "student", "--out-dir", str(trained), "--quiet"]) == 0
    config = json.loads((trained / "student" / "config.json").read_text())
    assert config["teachers"] == [str(trained / "clf"), str(trained / "clf" / "last.safetensors")]
    capsys.readouterr()
    assert main([*student, "--teachers", str(trained / "ae"), "--name", "bad", "--out-dir", str(trained)]) == 2
    err = capsys.readouterr().err
    assert "teacher" in err and "is not a classifier" in err and err.count("\n") == 1


def test_fine_tune_a_trained_run(trained, capsys):
    tune = ["train", "squeezenet_cifar", "--data", "digits", "--image-size", "16", "--epochs", "1", *SMALL]
    assert (
        main([*tune, "--init-from", str(trained / "clf"), "--name", "tuned", "--out-dir", str(trained), "--quiet"]) == 0
    )
    assert json.loads((trained / "tuned" / "config.json").read_text())["init_from"] == str(trained / "clf")
    capsys.readouterr()
    assert main([*tune, "--init-from", str(trained / "ae"), "--name", "bad-init", "--out-dir", str(trained)]) == 2
    err = capsys.readouterr().err
    assert "init_from" in err and "same model and options" in err and err.count("\n") == 1
    assert not (trained / "bad-init").exists()


def test_existing_run_is_never_overwritten(trained, capsys):
    before = (trained / "clf" / "metrics.jsonl").read_text()
    assert main(["train", "dense_ae", "--data", "digits", "--name", "clf", "--out-dir", str(trained)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (trained / "clf" / "metrics.jsonl").read_text() == before


def test_resume_refuses_to_change_the_recipe(trained, capsys):
    assert main(["train", "--resume", str(trained / "ae"), "--lr", "0.5"]) == 2
    assert "only device, early_stopping, epochs, max_time, val_every may change, not lr" in capsys.readouterr().err
    assert main(["train", "--resume", str(trained / "ae"), "--arg", "code_size=3"]) == 2
    assert "not arg" in capsys.readouterr().err


def test_evaluate_test_split_of_data_without_one(trained, capsys):
    assert main(["evaluate", str(trained / "clf")]) == 2
    assert "digits has no test split; use --split val" in capsys.readouterr().err


def test_evaluate_with_mismatched_data(trained, tmp_path, capsys):
    for label in ("a", "b"):
        (tmp_path / "rgb" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(tmp_path / "rgb" / label / f"{i}.png")
    assert main(["evaluate", str(trained / "clf"), "--data", f"folder:{tmp_path / 'rgb'}", "--split", "train"]) == 2
    assert "the model expects images of shape (1, 16, 16)" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "demo"])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0 and "examples:" in capsys.readouterr().out


def _fit_that_stops(error, epochs=1):
    """A stand-in for fit that logs ``epochs`` epochs to the run directory, then raises ``error``."""

    def fit(model, *, config, run_dir, verbose, resume=False):
        run_dir.mkdir(parents=True)
        lines = [{"epoch": e + 1, "train_loss": 1.0 / (e + 1), "val_loss": 1.5 / (e + 1)} for e in range(epochs)]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        raise error

    return fit


@pytest.mark.parametrize(
    "error, code", [(KeyboardInterrupt(), 130), (TrainingDiverged("the loss is nan at epoch 2"), 1)]
)
def test_an_interrupted_or_diverged_run_still_gets_its_curves(tmp_path, monkeypatch, capsys, error, code):
    monkeypatch.setattr("squeezelab.cli.train.fit", _fit_that_stops(error))
    assert main(["train", "dense_ae", "--name", "stopped", "--out-dir", str(tmp_path)]) == code
    assert (tmp_path / "stopped" / "plots" / "curves.png").stat().st_size > 0


def test_no_curves_without_a_finished_epoch_or_off_rank_0(tmp_path, monkeypatch):
    monkeypatch.setattr("squeezelab.cli.train.fit", _fit_that_stops(KeyboardInterrupt(), epochs=0))
    assert main(["train", "dense_ae", "--name", "none", "--out-dir", str(tmp_path)]) == 130
    assert not (tmp_path / "none" / "plots").exists()
    monkeypatch.setattr("squeezelab.cli.train.fit", _fit_that_stops(KeyboardInterrupt()))
    monkeypatch.setenv("RANK", "1")
    assert main(["train", "dense_ae", "--name", "rank1", "--out-dir", str(tmp_path)]) == 130
    assert not (tmp_path / "rank1" / "plots").exists()
