"""compare --weights: the comparison measured on shipped weights, on the images every card held out."""

import json

import pytest

from squeezelab.cli import main
from squeezelab.inference import evaluate
from squeezelab.weights import package_weights, registry

HELD_OUT = {"validation_split": 0.2, "seed": 3}


@pytest.fixture
def ship(make_checkpoint, tmp_path, monkeypatch):
    """ship(model, epochs, config) packages an untrained model as shipped weights 'toy' of a test-only registry."""
    folder = tmp_path / "files"
    monkeypatch.setattr(registry, "WEIGHTS_DIR", folder)

    def make(model, epochs, config=HELD_OUT):
        run = make_checkpoint(model, (1, 16, 16), img_size=16, code_size=8)
        card = package_weights(
            run,
            folder,
            "toy",
            trained_on="-",
            metrics={},
            metrics_command="-",
            recipe=[f"train {model}"],
            training={"epochs": epochs, "seconds": 1.0},
        )
        card.write_text(json.dumps({**json.loads(card.read_text()), "config": config}))
        registry._cards.cache_clear()

    yield make
    registry._cards.cache_clear()


def _compare(tmp_path, *extra):
    return main(
        [
            "compare",
            "autoencoders",
            "--data",
            "digits",
            "--weights",
            "toy",
            "--out",
            str(tmp_path / "cmp"),
            "--quiet",
            "--overwrite",
            *extra,
        ]
    )


def test_shipped_weights_are_measured_on_their_held_out_images(ship, tmp_path, capsys):
    ship("conv_ae", 5)
    ship("squeeze_ae", 5)
    assert _compare(tmp_path) == 0
    results = json.loads((tmp_path / "cmp" / "results.json").read_text())
    rows = {row["model"]: row for row in results["rows"]}
    assert set(rows) == {"conv_ae", "squeeze_ae"}  # dense_ae and the others have no 'toy' weights
    assert results["data"]["test"] == round(0.2 * 1797) and "held out" in results["data"]["test_source"]
    held_out = evaluate("conv_ae:toy", "digits", split="val")
    assert rows["conv_ae"]["test_mse"] == pytest.approx(held_out["mse"], rel=1e-5)
    assert rows["squeeze_ae"]["trained"] == "5, shipped" and not rows["squeeze_ae"]["cut_short"]
    claims = {claim["id"]: claim for claim in results["claims"]}
    assert all(claims[i]["verdict"] != "not measurable here" for i in (1, 2, 3))
    assert "against conv_ae" in claims[1]["evidence"]
    assert (tmp_path / "cmp" / "report.html").exists() and "squeeze_ae" in capsys.readouterr().out


def test_a_model_trained_fewer_epochs_is_flagged_and_not_judged(ship, tmp_path):
    ship("conv_ae", 5)
    ship("squeeze_ae", 2)
    assert _compare(tmp_path) == 0
    results = json.loads((tmp_path / "cmp" / "results.json").read_text())
    rows = {row["model"]: row for row in results["rows"]}
    assert rows["squeeze_ae"]["cut_short"] and rows["squeeze_ae"]["trained"] == "2, shipped (others: 5)"
    assert results["claims"][0]["verdict"] == "not measurable here"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--epochs", "3"], "drop --epochs"),
        (["--models", "dense_ae"], "no shipped weights 'toy' for dense_ae"),
    ],
)
def test_options_that_cannot_apply_are_refused(ship, tmp_path, capsys, extra, message):
    ship("conv_ae", 5)
    assert _compare(tmp_path, *extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cards_with_different_held_out_splits_are_refused(ship, tmp_path, capsys):
    ship("conv_ae", 5)
    ship("squeeze_ae", 5, config={"validation_split": 0.2, "seed": 4})
    assert _compare(tmp_path) == 2
    assert "different splits" in capsys.readouterr().err
