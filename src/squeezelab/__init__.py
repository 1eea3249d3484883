"""squeezelab: compact SqueezeNet-family networks and autoencoders, measured against traditional ones."""

from squeezelab.models import create_model, list_models
from squeezelab.profile import profile_model

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "profile_model"]
