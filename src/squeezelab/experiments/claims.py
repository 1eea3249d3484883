"""The source material's claims, each turned into a verdict computed from measured numbers.

A verdict is code, not prose: ``holds``, ``does not hold`` or ``not measurable here`` follows from the rows
of a comparison (one dict of figures per model), so a claim's verdict changes when the numbers change.
Each function takes ``rows`` keyed by model label and returns a ``Claim``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from squeezelab.report.render import FAILS, HOLDS, UNMEASURABLE

# "About as well": within this fraction of the counterpart's test error.
RECONSTRUCTION_TOLERANCE = 0.10
# "A fraction of the size": at most this share of the counterpart's parameters.
PARAMETER_SHARE = 1 / 3
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
SQUEEZE_AE = "squeeze_ae"


def _trained(row: dict) -> bool:
    return row.get("status", "ok") == "ok"


def _unmeasured(claim_id: int, text: str, rows: Rows, labels: tuple[str, ...], command: str) -> Claim | None:
    """The 'not measurable here' verdict when a model the claim needs is absent, failed or cut short, else None.

    A model the time budget stopped before its epochs were done (or shipped weights trained fewer epochs) is not
    compared with models that had them all: that would judge the budget, not the design.
    """
    absent = [label for label in labels if label not in rows or not _trained(rows[label])]
    if absent:
        return Claim(claim_id, text, UNMEASURABLE, f"needs {', '.join(absent)} to have trained ({command})")
    cut = [label for label in labels if rows[label].get("cut_short")]
    if cut:
        epochs = ", ".join(f"{label} {rows[label]['epochs']} of {rows[label]['epochs_planned']}" for label in cut)
        return Claim(
            claim_id,
            text,
            UNMEASURABLE,
            f"{', '.join(cut)} trained fewer epochs than the others ({epochs}); every model needs the same "
            f"epochs: raise --max-time or lower --epochs, or compare weights trained alike ({command})",
        )
    return None


def nearest_counterpart(rows: Rows, label: str) -> str | None:
    """The traditional model to judge a squeeze model against: same code size, same kind of layers.

    A convolutional squeeze model is judged against a convolutional traditional one, never against a dense
    model that sees the image as a flat vector; among several, the one closest in parameters and MACs.
    """
    model = rows[label]
    candidates = [
        other
        for other, row in rows.items()
        if row.get("design") == "traditional"
        and row.get("convolutional") == model.get("convolutional")
        and row.get("code_size") == model.get("code_size")
    ]

    def distance(other: str) -> float:
        return sum(
            abs(math.log(rows[other][key] / model[key]))
            for key in ("params", "macs")
            if rows[other].get(key) and model.get(key)
        )

    return min(candidates, key=distance, default=None)


def _squeeze_and_counterpart(claim_id: int, text: str, rows: Rows) -> tuple[str | None, Claim | None]:
    if SQUEEZE_AE not in rows:
        return None, Claim(claim_id, text, UNMEASURABLE, f"needs {SQUEEZE_AE} to have trained ({AUTOENCODERS})")
    counterpart = nearest_counterpart(rows, SQUEEZE_AE)
    if counterpart is None:
        kind = "convolutional" if rows[SQUEEZE_AE].get("convolutional") else "dense"
        needs = f"needs a traditional {kind} autoencoder at the same code size to compare with ({AUTOENCODERS})"
        return None, Claim(claim_id, text, UNMEASURABLE, needs)
    return counterpart, _unmeasured(claim_id, text, rows, (SQUEEZE_AE, counterpart), AUTOENCODERS)


def _versus(counterpart: str, rows: Rows) -> str:
    row = rows[counterpart]
    kind = "convolutional" if row.get("convolutional") else "dense"
    return f"against {counterpart}, the nearest traditional model ({kind}, code size {row.get('code_size')})"


def squeeze_reconstructs_as_well(rows: Rows) -> Claim:
    text = "A squeeze autoencoder reconstructs about as well as its traditional counterpart."
    counterpart, unmeasured = _squeeze_and_counterpart(1, text, rows)
    if unmeasured:
        return unmeasured
    squeeze, other = rows[SQUEEZE_AE]["test_mse"], rows[counterpart]["test_mse"]
    verdict = HOLDS if squeeze <= other * (1 + RECONSTRUCTION_TOLERANCE) else FAILS
    return Claim(
        1,
        text,
        verdict,
        f"{_versus(counterpart, rows)}: test MSE {squeeze:.4f} vs {other:.4f} ({squeeze / other - 1:+.1%}; "
        f"'about as well' = at most {RECONSTRUCTION_TOLERANCE:.0%} higher)",
    )


def squeeze_is_smaller(rows: Rows) -> Claim:
    text = "...with at most a third of its parameters and a smaller model file."
    counterpart, unmeasured = _squeeze_and_counterpart(2, text, rows)
    if unmeasured:
        return unmeasured
    squeeze, other = rows[SQUEEZE_AE], rows[counterpart]
    share = squeeze["params"] / other["params"]
    smaller_file = squeeze["file_bytes"] < other["file_bytes"]
    verdict = HOLDS if share <= PARAMETER_SHARE and smaller_file else FAILS
    return Claim(
        2,
        text,
        verdict,
        f"{_versus(counterpart, rows)}: parameters {squeeze['params']:,} vs {other['params']:,} ({share:.0%}; "
        f"threshold {PARAMETER_SHARE:.0%}); file {squeeze['file_bytes']:,} vs {other['file_bytes']:,} bytes",
    )


def squeeze_computes_less(rows: Rows) -> Claim:
    text = "...with no more computation: MACs per image, and throughput on this machine."
    counterpart, unmeasured = _squeeze_and_counterpart(3, text, rows)
    if unmeasured:
        return unmeasured
    squeeze, other = rows[SQUEEZE_AE], rows[counterpart]
    verdict = HOLDS if squeeze["macs"] <= other["macs"] and squeeze["throughput"] >= other["throughput"] else FAILS
    return Claim(
        3,
        text,
        verdict,
        f"{_versus(counterpart, rows)}: MACs per image {squeeze['macs']:,} vs {other['macs']:,} "
        f"({squeeze['macs'] / other['macs']:.2f}x; threshold 1x); throughput {squeeze['throughput']:,.0f} vs "
        f"{other['throughput']:,.0f} images/s at batch 256 (threshold: at least as fast)",
    )


def squeezenet_alexnet_level(rows: Rows) -> Claim:
    text = "SqueezeNet reaches AlexNet-level accuracy with 50x fewer parameters (on the data at hand)."
    squeezenets = [label for label in rows if label.startswith("squeezenet") and _trained(rows[label])]
    if not squeezenets:
        return Claim(4, text, UNMEASURABLE, f"needs a squeezenet_cifar to have trained ({CLASSIFIERS})")
    best = max(squeezenets, key=lambda label: rows[label]["test_acc1"])
    if unmeasured := _unmeasured(4, text, rows, (best, "alexnet_cifar"), CLASSIFIERS):
        return unmeasured
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
