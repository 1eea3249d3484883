"""``CompressConfig``: the settings of Deep Compression's three stages, checked when it is built.

Every field but ``seed`` is an option of ``squeezelab compress`` (``--prune-steps`` for ``prune_steps``); the
field's ``help`` is the option's help and its default the option's default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from squeezelab.compress.prune import check_density
from squeezelab.compress.share import check_bits
from squeezelab.compress.sparse import check_gap_bits
from squeezelab.errors import SqueezelabError


def _opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class CompressConfig:
    # The paper's SqueezeNet keeps 33% of its weights.
    density: float = _opt(0.33, "fraction of conv/fc weights kept")
    scope: Literal["layer", "global"] = _opt("layer", "prune per layer or globally")
    prune_steps: int = _opt(3, "prune/fine-tune rounds")
    finetune_epochs: int = _opt(1, "fine-tuning epochs after each pruning round")
    conv_bits: int = _opt(8, "bits per shared conv weight")
    fc_bits: int = _opt(5, "bits per shared fully connected weight")
    centroid_epochs: int = _opt(1, "epochs fine-tuning the shared centroids")
    gap_bits: int = _opt(5, "bits of a sparse-position gap")
    coder: Literal["ans", "huffman"] = _opt("ans", "entropy coder")
    small_dtype: Literal["float16", "float32"] = _opt("float16", "biases, BN statistics")
    # Fine-tuning learning rates are fractions of the training run's peak rate.
    lr_scale: float = _opt(0.1, "fine-tuning lr as a fraction of the run's lr")
    # A model whose BN was folded trains without it in the centroid stage and wants a lower rate there: the
    # fast-cifar10 model's centroid stage lost 0.2 points at 0.25 x, gained 0.8 at 0.025 x.
    centroid_lr_scale: float | None = _opt(
        None,
        "the centroid stage's lr as a fraction of the run's lr; lower it for models with batch norm, which is"
        " folded away before that stage",
        none="--lr-scale",
    )
    seed: int = _opt(0, "seed of the fine-tuning runs")

    def __post_init__(self) -> None:
        check_density(self.density)
        check_bits(self.conv_bits)
        check_bits(self.fc_bits)
        check_gap_bits(self.gap_bits)
        if self.prune_steps < 1:
            raise SqueezelabError(f"prune steps must be at least 1, got {self.prune_steps}")
        if self.finetune_epochs < 0 or self.centroid_epochs < 0:
            raise SqueezelabError("fine-tuning epochs cannot be negative")
        if self.coder not in ("ans", "huffman"):
            raise SqueezelabError(f"coder must be ans or huffman, got {self.coder!r}")
        for scale in (self.lr_scale, self.centroid_lr_scale):
            if scale is not None and not scale > 0:
                raise SqueezelabError(f"a fine-tuning learning-rate scale must be positive, got {scale}")
        if self.small_dtype not in ("float16", "float32"):
            raise SqueezelabError(f"small tensors are stored as float16 or float32, not {self.small_dtype!r}")
