"""squeezelab: compact SqueezeNet-family networks and autoencoders, measured against traditional ones.

Deep Compression is ``squeezelab.compress.compress`` and deployment ``squeezelab.export.export``: they stay in
their subpackages, since a function re-exported here under the subpackage's own name would shadow it.
"""

from squeezelab.data import load_dataset
from squeezelab.inference import evaluate, load_model, predict
from squeezelab.models import list_models
from squeezelab.profile import profile_model
from squeezelab.train import fit
from squeezelab.version import __version__
from squeezelab.weights import create_model, list_weights

__all__ = [
    "__version__",
    "create_model",
    "evaluate",
    "fit",
    "list_models",
    "list_weights",
    "load_dataset",
    "load_model",
    "predict",
    "profile_model",
]
