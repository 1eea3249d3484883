"""The source material's claims, each turned into a verdict computed from measured numbers.

A verdict is code, not prose: ``holds``, ``does not hold`` or ``not measurable here`` follows from the rows
of a comparison (one dict of figures per model), so a claim's verdict changes when the numbers change.
Each function takes ``rows`` keyed by model label and returns a ``Claim``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from squeezelab.report.render import FAILS, HOLDS, UNMEASURABLE

# "About as well": within this fraction of the traditional model's test error.
RECONSTRUCTION_TOLERANCE = 0.10
# "Markedly fewer parameters": at least this factor.
MARKEDLY_FEWER = 2.0
# "AlexNet-level accuracy": within this many points of top-1.
ALEXNET_LEVEL_POINTS = 1.0
PAPER_PARAMETER_RATIO = 50.0
# "About 50x": the paper's own ratio, 61.1M / 1.25M, is 48.9x.
ABOUT = 0.9


@dataclass(frozen=True)
class Claim:
    id: int
    claim: str
    verdict: str
    evidence: str

    def to_dict(self) -> dict:
        return asdict(self)


Rows = dict[str, dict]


AUTOENCODERS = "squeezelab compare autoencoders"
CLASSIFIERS = "squeezelab compare classifiers"


def _ok(rows: Rows, *labels: str) -> bool:
    return all(label in rows and rows[label].get("status", "ok") == "ok" for label in labels)


def _unmeasured(claim_id: int, text: str, rows: Rows, labels: tuple[str, ...], command: str) -> Claim | None:
    """The 'not measurable here' verdict when a model the claim needs is absent or failed, else None."""
    absent = [label for label in labels if not _ok(rows, label)]
    if not absent:
        return None
    return Claim(claim_id, text, UNMEASURABLE, f"needs {', '.join(absent)} to have trained ({command})")


def squeeze_reconstructs_as_well(rows: Rows) -> Claim:
    text = "A squeeze autoencoder reconstructs about as well as a traditional one."
    if unmeasured := _unmeasured(1, text, rows, ("squeeze_ae", "dense_ae"), AUTOENCODERS):
        return unmeasured
    squeeze, dense = rows["squeeze_ae"]["test_mse"], rows["dense_ae"]["test_mse"]
    verdict = HOLDS if squeeze <= dense * (1 + RECONSTRUCTION_TOLERANCE) else FAILS
    return Claim(
        1,
        text,
        verdict,
        f"test MSE: squeeze_ae {squeeze:.4f}, dense_ae {dense:.4f} ({squeeze / dense - 1:+.1%}; "
        f"'about as well' = within {RECONSTRUCTION_TOLERANCE:.0%})",
    )


def squeeze_is_smaller(rows: Rows) -> Claim:
    text = "...with markedly fewer parameters and a smaller model file."
    if unmeasured := _unmeasured(2, text, rows, ("squeeze_ae", "dense_ae"), AUTOENCODERS):
        return unmeasured
    squeeze, dense = rows["squeeze_ae"], rows["dense_ae"]
    ratio = dense["params"] / squeeze["params"]
    smaller_file = squeeze["file_bytes"] < dense["file_bytes"]
    verdict = HOLDS if ratio >= MARKEDLY_FEWER and smaller_file else FAILS
    return Claim(
        2,
        text,
        verdict,
        f"parameters: squeeze_ae {squeeze['params']:,}, dense_ae {dense['params']:,} ({ratio:.1f}x fewer; "
        f"'markedly' = {MARKEDLY_FEWER:.0f}x or more); "
        f"file: {squeeze['file_bytes']:,} vs {dense['file_bytes']:,} bytes",
    )


def squeeze_computes_less(rows: Rows) -> Claim:
    text = "...with less computation (MACs and measured latency)."
    if unmeasured := _unmeasured(3, text, rows, ("squeeze_ae", "dense_ae"), AUTOENCODERS):
        return unmeasured
    squeeze, dense = rows["squeeze_ae"], rows["dense_ae"]
    fewer_macs = squeeze["macs"] < dense["macs"]
    faster = squeeze["latency_ms"] < dense["latency_ms"]
    verdict = HOLDS if fewer_macs and faster else FAILS
    evidence = (
        f"MACs per image: squeeze_ae {squeeze['macs']:,}, dense_ae {dense['macs']:,} "
        f"({squeeze['macs'] / dense['macs']:.1f}x); latency at batch 1: {squeeze['latency_ms']:.3f} ms vs "
        f"{dense['latency_ms']:.3f} ms"
    )
    convolutional = [
        label for label in ("squeeze_ae", "conv_ae") if _ok(rows, label) and rows[label]["macs"] > dense["macs"]
    ]
    if convolutional:
        evidence += (
            f". Plainly: {' and '.join(convolutional)} cost more compute than the dense model on "
            "these inputs, because a convolution repeats its weights at every pixel"
        )
    return Claim(3, text, verdict, evidence)


def squeezenet_alexnet_level(rows: Rows) -> Claim:
    text = "SqueezeNet reaches AlexNet-level accuracy with 50x fewer parameters (on the data at hand)."
    squeezenets = [label for label in rows if label.startswith("squeezenet") and _ok(rows, label)]
    if not squeezenets or not _ok(rows, "alexnet_cifar"):
        needs = f"needs a squeezenet_cifar and alexnet_cifar to have trained ({CLASSIFIERS})"
        return Claim(4, text, UNMEASURABLE, needs)
    best = max(squeezenets, key=lambda label: rows[label]["test_acc1"])
    squeeze, alex = rows[best], rows["alexnet_cifar"]
    lead = (squeeze["test_acc1"] - alex["test_acc1"]) * 100
    ratio = alex["params"] / squeeze["params"]
    verdict = HOLDS if lead >= -ALEXNET_LEVEL_POINTS and ratio >= ABOUT * PAPER_PARAMETER_RATIO else FAILS
    trained = "; epochs trained: " + ", ".join(
        f"{label} {rows[label]['epochs']}" for label in (best, "alexnet_cifar") if "epochs" in rows[label]
    )
    return Claim(
        4,
        text,
        verdict,
        f"top-1: {best} {squeeze['test_acc1']:.1%}, alexnet_cifar {alex['test_acc1']:.1%} "
        f"({abs(lead):.1f} points {'ahead' if lead >= 0 else 'behind'}; 'AlexNet-level' = at most "
        f"{ALEXNET_LEVEL_POINTS:.0f} behind); {ratio:.1f}x fewer parameters "
        f"(claim: about {PAPER_PARAMETER_RATIO:.0f}x, at least {ABOUT * PAPER_PARAMETER_RATIO:.0f}x)"
        + (trained if "epochs" in alex else ""),
    )


def simple_bypass_helps(rows: Rows) -> Claim:
    text = "The simple bypass improves accuracy at no parameter cost (paper: +2.9 points top-1 on ImageNet)."
    plain, bypass = "squeezenet_cifar", "squeezenet_cifar+simple"
    if unmeasured := _unmeasured(5, text, rows, (plain, bypass), CLASSIFIERS):
        return unmeasured
    gain = (rows[bypass]["test_acc1"] - rows[plain]["test_acc1"]) * 100
    free = rows[bypass]["params"] == rows[plain]["params"]
    verdict = HOLDS if gain > 0 and free else FAILS
    return Claim(
        5,
        text,
        verdict,
        f"top-1: with bypass {rows[bypass]['test_acc1']:.1%}, without {rows[plain]['test_acc1']:.1%} "
        f"({gain:+.1f} points); parameters {rows[bypass]['params']:,} vs {rows[plain]['params']:,}",
    )


def contractive_is_robust(rows: Rows) -> Claim:
    text = "The contractive penalty gives more robust codes (lower contraction, lower error on noisy inputs)."
    plain, contractive = "squeeze_ae", "squeeze_ae+contractive"
    if unmeasured := _unmeasured(6, text, rows, (plain, contractive), AUTOENCODERS):
        return unmeasured
    a, b = rows[plain], rows[contractive]
    noise_keys = sorted(k for k in a if k.startswith("noisy_mse_"))
    lower_contraction = b["contraction"] < a["contraction"]
    lower_noise_error = bool(noise_keys) and all(b[k] < a[k] for k in noise_keys)
    verdict = HOLDS if lower_contraction and lower_noise_error else FAILS
    noisy = "; ".join(f"noise sigma {k.removeprefix('noisy_mse_')}: MSE {b[k]:.4f} vs {a[k]:.4f}" for k in noise_keys)
    return Claim(
        6,
        text,
        verdict,
        f"same model (squeeze_ae) trained with and without the penalty: encoder Jacobian norm "
        f"{b['contraction']:.3f} vs {a['contraction']:.3f}; {noisy}",
    )


CLAIMS: list[Callable[[Rows], Claim]] = [
    squeeze_reconstructs_as_well,
    squeeze_is_smaller,
    squeeze_computes_less,
    squeezenet_alexnet_level,
    simple_bypass_helps,
    contractive_is_robust,
]


def judge(rows: Rows) -> list[Claim]:
    return [claim(rows) for claim in CLAIMS]
