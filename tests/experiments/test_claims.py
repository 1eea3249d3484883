import pytest

from squeezelab.experiments.claims import FAILS, HOLDS, UNMEASURABLE, judge


def ae(params, file_bytes, macs, latency, mse, contraction=1.0, noisy=(0.02, 0.05)):
    return {
        "status": "ok",
        "params": params,
        "file_bytes": file_bytes,
        "macs": macs,
        "latency_ms": latency,
        "test_mse": mse,
        "contraction": contraction,
        "noisy_mse_0.1": noisy[0],
        "noisy_mse_0.3": noisy[1],
    }


def clf(params, acc1):
    return {"status": "ok", "params": params, "test_acc1": acc1}


@pytest.fixture
def autoencoders():
    return {
        "dense_ae": ae(106_448, 426_000, 105_472, 0.06, 0.0100),
        "conv_ae": ae(111_521, 446_000, 1_370_432, 0.38, 0.0090),
        "squeeze_ae": ae(23_965, 96_000, 1_598_976, 0.53, 0.0105, contraction=4.0, noisy=(0.030, 0.060)),
        "squeeze_ae+contractive": ae(23_965, 96_000, 1_598_976, 0.53, 0.0120, contraction=2.0, noisy=(0.025, 0.050)),
    }


def verdicts(rows):
    return {c.id: c.verdict for c in judge(rows)}


def test_autoencoder_claims_follow_the_numbers(autoencoders):
    v = verdicts(autoencoders)
    assert v[1] == HOLDS  # 5% worse is "about as well"
    assert v[2] == HOLDS  # 4.4x fewer parameters, smaller file
    assert v[3] == FAILS  # 15x the MACs, slower
    assert v[6] == HOLDS
    assert v[4] == v[5] == UNMEASURABLE
    evidence = {c.id: c.evidence for c in judge(autoencoders)}
    assert "squeeze_ae and conv_ae cost more compute than the dense model" in evidence[3]


def test_verdicts_change_when_the_numbers_change(autoencoders):
    autoencoders["squeeze_ae"]["test_mse"] = 0.0120  # 20% worse
    autoencoders["squeeze_ae"]["params"] = 60_000  # only 1.8x fewer
    autoencoders["squeeze_ae"]["macs"] = 50_000
    autoencoders["squeeze_ae"]["latency_ms"] = 0.01
    autoencoders["squeeze_ae+contractive"]["noisy_mse_0.3"] = 0.07  # worse at the high noise level
    v = verdicts(autoencoders)
    assert (v[1], v[2], v[3], v[6]) == (FAILS, FAILS, HOLDS, FAILS)


def test_failed_models_make_claims_unmeasurable(autoencoders):
    autoencoders["dense_ae"] = {"status": "failed", "error": "nan"}
    v = verdicts(autoencoders)
    assert v[1] == v[2] == v[3] == UNMEASURABLE
    assert "needs dense_ae to have trained" in judge(autoencoders)[0].evidence


def test_classifier_claims():
    rows = {
        "squeezenet_cifar": clf(727_626, 0.850),
        "squeezenet_cifar+simple": clf(727_626, 0.862),
        "squeezenet_cifar+5x5": clf(1_219_146, 0.855),
        "alexnet_cifar": clf(35_855_178, 0.868),
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
