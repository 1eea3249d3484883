import json

import pytest
import torch

from squeezelab.cli import main
from squeezelab.data import DataSplits, load_dataset
from squeezelab.errors import SqueezelabError
from squeezelab.experiments import compare
from squeezelab.experiments.compare import CompareConfig, Contender, run_comparison
from squeezelab.train import TrainingDiverged


@pytest.fixture(scope="module")
def autoencoder_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "ae"
    contenders = {**compare.CONTENDERS["autoencoders"], "exploding": Contender("exploding", "dense_ae")}
    real_fit = compare.fit

    def fit_that_diverges_for_one(model, data, config, run_dir, verbose):
        if run_dir.name == "exploding":
            raise TrainingDiverged("the loss became nan at epoch 1, step 3; lower --lr or set --grad-clip")
        return real_fit(model, data, config, run_dir=run_dir, verbose=verbose)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(compare.CONTENDERS, "autoencoders", contenders)
        patch.setattr(compare, "fit", fit_that_diverges_for_one)
        models = ("dense_ae", "squeeze_ae", "squeeze_ae+contractive", "exploding")
        cfg = CompareConfig("autoencoders", "digits", models=models, epochs=2, image_size=16, code_size=8)
        results = run_comparison(cfg, out, verbose=0)
    return out, results


def test_every_model_is_measured_at_one_code_size(autoencoder_results):
    out, results = autoencoder_results
    rows = {r["model"]: r for r in results["rows"]}
    for label in ("dense_ae", "squeeze_ae", "squeeze_ae+contractive"):
        row = rows[label]
        assert row["status"] == "ok" and row["epochs"] == 2
        assert 0 < row["test_mse"] < 0.2 and row["contraction"] > 0 and 0 <= row["probe_acc"] <= 1
        assert row["noisy_mse_0.3"] >= row["noisy_mse_0.1"] * 0.9
        config = json.loads((out / label / "config.json").read_text())
        assert config["model_kwargs"]["code_size"] == 8
    assert rows["squeeze_ae"]["params"] == rows["squeeze_ae+contractive"]["params"]
    data = results["data"]
    assert data["train"] + data["val"] + data["test"] == 1797 and "never used for training" in data["test_source"]


def test_a_failing_model_is_reported_and_the_others_finish(autoencoder_results):
    _, results = autoencoder_results
    exploding = next(r for r in results["rows"] if r["model"] == "exploding")
    assert exploding["status"] == "failed" and "the loss became" in exploding["error"]


def test_report_files_and_claims(autoencoder_results):
    out, results = autoencoder_results
    saved = json.loads((out / "results.json").read_text())
    assert saved["claims"] == results["claims"] and len(saved["claims"]) == 6
    assert {c["verdict"] for c in saved["claims"]} <= {"holds", "does not hold", "not measurable here"}
    for plot in saved["plots"]:
        assert (out / plot["path"]).read_bytes()[:4] == b"\x89PNG"
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "exploding" in html
    assert "| squeeze_ae |" in (out / "report.md").read_text()


@pytest.mark.slow
def test_classifier_comparison(tmp_path):
    cfg = CompareConfig(
        "classifiers",
        "digits",
        models=("squeezenet_cifar", "squeezenet_cifar+simple", "alexnet_cifar"),
        epochs=1,
        image_size=16,
    )
    results = run_comparison(cfg, tmp_path / "clf", verbose=0)
    rows = {r["model"]: r for r in results["rows"]}
    assert all(r["status"] == "ok" for r in rows.values())
    assert rows["squeezenet_cifar"]["param_ratio"] > 30 and rows["alexnet_cifar"]["param_ratio"] == 1
    assert len(rows["squeezenet_cifar"]["per_class"]) == 10
    claims = {c["id"]: c["verdict"] for c in results["claims"]}
    assert claims[1] == "not measurable here" and claims[4] in ("holds", "does not hold")
    assert (tmp_path / "clf" / "plots" / "per_class.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["autoencoders", "--data", "digits", "--models", "dense_ae,tiny_ae"], "unknown model(s) for compare"),
        (["autoencoders", "--data", "digits", "--preset", "slow"], "unknown preset 'slow'"),
        (
            ["autoencoders", "--data", "digits", "--max-time", "0.001", "--models", "squeeze_ae"],
            "too small to train one epoch of every model",
        ),
        (["classifiers", "--data", "digits", "--epochs", "0"], "--epochs must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert main(["compare", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_an_existing_report_is_kept_without_overwrite(autoencoder_results, capsys):
    out, _ = autoencoder_results
    before = (out / "report.md").read_text()
    assert main(["compare", "autoencoders", "--data", "digits", "--out", str(out), "--models", "dense_ae"]) == 2
    assert "already holds a report; pass --overwrite" in capsys.readouterr().err
    assert (out / "report.md").read_text() == before


def test_classifiers_need_labels(tmp_path, monkeypatch):
    digits = load_dataset("digits", image_size=16, progress=False)
    unlabelled = DataSplits.from_train(type(digits.train)(digits.train.images, None, [], "unlabelled"))
    monkeypatch.setattr(compare, "load_dataset", lambda *a, **k: unlabelled)
    with pytest.raises(SqueezelabError, match="has no labels: a classifier comparison needs labelled data"):
        run_comparison(CompareConfig("classifiers", "unlabelled"), tmp_path, verbose=0)
    assert torch.is_tensor(unlabelled.train.images)


def test_the_budget_is_the_whole_comparisons_and_a_model_cut_short_is_flagged(tmp_path):
    budgets = []
    real_fit = compare.fit

    def fit_stopped_by_the_clock(model, data, config, run_dir, verbose):
        budgets.append(config.sched.max_time)
        # conv_ae runs out of time after one of its two epochs, as a budget stop would leave it.
        epochs = 1 if run_dir.name == "conv_ae" else config.sched.epochs
        return real_fit(model, data, config.updated(epochs=epochs), run_dir=run_dir, verbose=verbose)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compare, "fit", fit_stopped_by_the_clock)
        models = ("dense_ae", "conv_ae", "squeeze_ae")
        cfg = CompareConfig("autoencoders", "digits", models=models, epochs=2, max_time=600, image_size=16, code_size=8)
        results = run_comparison(cfg, tmp_path / "out", verbose=0)
    rows = {r["model"]: r for r in results["rows"]}
    assert budgets[0] == 600 and budgets[0] > budgets[1] > budgets[2]  # each model gets what the others left
    assert rows["conv_ae"]["cut_short"] and rows["conv_ae"]["trained"] == "1 of 2, cut short"
    assert not rows["squeeze_ae"]["cut_short"] and rows["squeeze_ae"]["trained"] == "2 of 2"
    assert rows["squeeze_ae"]["design"] == "squeeze" and rows["conv_ae"]["design"] == "traditional"
    claims = {c["id"]: c for c in results["claims"]}
    # squeeze_ae is judged against conv_ae, its convolutional counterpart, which did not get its epochs.
    assert {claims[i]["verdict"] for i in (1, 2, 3)} == {"not measurable here"}
    assert "conv_ae trained fewer epochs than the others" in claims[1]["evidence"]
    assert "1 of 2, cut short" in (tmp_path / "out" / "report.md").read_text()


def test_sweep_trains_the_grid_beside_the_traditional_models():
    labels = [c.label for c in CompareConfig("autoencoders", "digits", sweep=True).contenders()]
    assert labels[:3] == ["dense_ae", "conv_ae", "squeeze_ae"] and len(labels) == 3 + len(compare.SWEEP)
    with pytest.raises(SqueezelabError, match="--sweep is for compare autoencoders"):
        CompareConfig("classifiers", "digits", sweep=True).contenders()


def test_pareto_front():
    rows = {
        "a": {"params": 10, "test_mse": 0.5},
        "b": {"params": 20, "test_mse": 0.2},
        "c": {"params": 30, "test_mse": 0.3},  # beaten by b on both
        "d": {"params": 40, "test_mse": 0.1},
    }
    assert compare.pareto_front(rows, "params", "test_mse") == ["a", "b", "d"]
