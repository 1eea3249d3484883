import pytest

from squeezelab.experiments.claims import FAILS, HOLDS, UNMEASURABLE, judge, nearest_counterpart


def ae(params, file_bytes, macs, throughput, mse, contraction=1.0, noisy=(0.02, 0.05), design="traditional", conv=True):
    return {
        "status": "ok",
        "design": design,
        "convolutional": conv,
        "code_size": 32,
        "params": params,
        "file_bytes": file_bytes,
        "macs": macs,
        "throughput": throughput,
        "epochs": 10,
        "epochs_planned": 10,
        "cut_short": False,
        "test_mse": mse,
        "contraction": contraction,
        "noisy_mse_0.1": noisy[0],
        "noisy_mse_0.3": noisy[1],
    }


def clf(params, acc1, design="squeeze"):
    return {"status": "ok", "design": design, "convolutional": True, "params": params, "test_acc1": acc1}


@pytest.fixture
def autoencoders():
    squeeze = {"design": "squeeze"}
    return {
        "dense_ae": ae(106_448, 426_000, 105_472, 300_000, 0.0150, conv=False),
        "conv_ae": ae(111_521, 446_000, 1_370_432, 6_000, 0.0050),
        "squeeze_ae": ae(30_000, 120_000, 1_200_000, 7_000, 0.0054, contraction=4.0, noisy=(0.03, 0.06), **squeeze),
        "squeeze_ae+contractive": ae(
            30_000, 120_000, 1_200_000, 7_000, 0.0060, contraction=2.0, noisy=(0.025, 0.05), **squeeze
        ),
    }


def verdicts(rows):
    return {c.id: c.verdict for c in judge(rows)}


def test_autoencoder_claims_follow_the_numbers(autoencoders):
    v = verdicts(autoencoders)
    assert v[1] == HOLDS  # 8% worse than conv_ae is "about as well"
    assert v[2] == HOLDS  # 27% of conv_ae's parameters, smaller file
    assert v[3] == HOLDS  # fewer MACs, higher throughput
    assert v[6] == HOLDS
    assert v[4] == v[5] == UNMEASURABLE


def test_claims_judge_a_squeeze_model_against_its_nearest_counterpart(autoencoders):
    assert nearest_counterpart(autoencoders, "squeeze_ae") == "conv_ae"  # not the dense model, 3x worse
    evidence = judge(autoencoders)[0].evidence
    assert "against conv_ae, the nearest traditional model (convolutional, code size 32)" in evidence
    assert "at most 10% higher" in evidence  # the threshold is stated
    # Among two convolutional baselines, the one closer in size and compute.
    autoencoders["conv_ae_big"] = ae(900_000, 3_600_000, 9_000_000, 1_000, 0.0030)
    assert nearest_counterpart(autoencoders, "squeeze_ae") == "conv_ae"
    # A dense squeeze model would be judged against the dense one.
    autoencoders["squeeze_ae"]["convolutional"] = False
    assert nearest_counterpart(autoencoders, "squeeze_ae") == "dense_ae"
    # No traditional model of the same code size: nothing to compare with.
    for row in autoencoders.values():
        row["code_size"] = 16 if row["design"] == "traditional" else 32
    assert verdicts(autoencoders)[1] == UNMEASURABLE
    assert "needs a traditional dense autoencoder at the same code size" in judge(autoencoders)[0].evidence


def test_verdicts_change_when_the_numbers_change(autoencoders):
    autoencoders["squeeze_ae"]["test_mse"] = 0.0056  # 12% worse than conv_ae, though far better than dense_ae
    autoencoders["squeeze_ae"]["params"] = 40_000  # 36% of conv_ae's
    autoencoders["squeeze_ae"]["throughput"] = 5_000  # slower than conv_ae
    autoencoders["squeeze_ae+contractive"]["noisy_mse_0.3"] = 0.07  # worse at the high noise level
    v = verdicts(autoencoders)
    assert (v[1], v[2], v[3], v[6]) == (FAILS, FAILS, FAILS, FAILS)


def test_failed_models_make_claims_unmeasurable(autoencoders):
    autoencoders["conv_ae"] = {**autoencoders["conv_ae"], "status": "failed", "error": "nan"}
    v = verdicts(autoencoders)
    assert v[1] == v[2] == v[3] == UNMEASURABLE
    assert "needs conv_ae to have trained" in judge(autoencoders)[0].evidence


def test_a_model_cut_short_is_not_measured(autoencoders):
    # Better numbers after fewer epochs must not count: the claim is about the design, not the budget.
    autoencoders["conv_ae"].update(epochs=4, cut_short=True, test_mse=0.0200)
    v = verdicts(autoencoders)
    assert v[1] == v[2] == v[3] == UNMEASURABLE
    assert "conv_ae trained fewer epochs than the others (conv_ae 4 of 10)" in judge(autoencoders)[0].evidence
    autoencoders["squeeze_ae+contractive"]["cut_short"] = True
    assert verdicts(autoencoders)[6] == UNMEASURABLE


def test_classifier_claims():
    rows = {
        "squeezenet_cifar": clf(727_626, 0.850),
        "squeezenet_cifar+simple": clf(727_626, 0.862),
        "squeezenet_cifar+5x5": clf(1_219_146, 0.855),
        "alexnet_cifar": clf(35_855_178, 0.868, design="traditional"),
    }
    v = verdicts(rows)
    assert v[4] == HOLDS  # 0.6 points behind, 49.3x fewer parameters: the paper's own ratio is 48.9x
    assert v[5] == HOLDS
    rows["alexnet_cifar"]["params"] = 20_000_000  # 27x: not "about 50x"
    assert verdicts(rows)[4] == FAILS
    rows["alexnet_cifar"]["params"] = 35_855_178
    rows["alexnet_cifar"]["test_acc1"] = 0.875  # 1.3 points behind
    assert verdicts(rows)[4] == FAILS
    rows["alexnet_cifar"]["test_acc1"] = 0.5  # far ahead is AlexNet-level too
    assert verdicts(rows)[4] == HOLDS
    assert "36.2 points ahead" in judge(rows)[3].evidence
    rows["alexnet_cifar"]["test_acc1"] = 0.868
    rows["squeezenet_cifar+simple"]["test_acc1"] = 0.840
    assert verdicts(rows)[5] == FAILS
    assert v[1] == v[2] == v[3] == v[6] == UNMEASURABLE


def test_an_undertrained_baseline_leaves_the_alexnet_claim_unmeasured():
    rows = {
        "squeezenet_cifar": clf(727_626, 0.850),
        "alexnet_cifar": {**clf(35_855_178, 0.43, design="traditional"), "epochs": 4, "epochs_planned": 30},
    }
    rows["alexnet_cifar"]["cut_short"] = True
    claim = judge(rows)[3]
    assert claim.verdict == UNMEASURABLE and "alexnet_cifar 4 of 30" in claim.evidence
