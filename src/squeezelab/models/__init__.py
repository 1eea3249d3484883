"""Model zoo: plain ``nn.Module``s created by name with ``create_model``."""

from squeezelab.models import alexnet, autoencoders, codecs, contractive, squeezenet  # noqa: F401  (registers models)
from squeezelab.models.autoencoders import Autoencoder
from squeezelab.models.codecs import Codec
from squeezelab.models.contractive import jacobian_penalty
from squeezelab.models.fire import Fire, FireUp
from squeezelab.models.fold import fold_batch_norm, for_inference
from squeezelab.models.registry import ModelInfo, create_model, list_models, model_info, register_model, same_model
from squeezelab.models.squeezenet import load_torchvision_weights

__all__ = [
    "Autoencoder",
    "Codec",
    "Fire",
    "FireUp",
    "ModelInfo",
    "create_model",
    "same_model",
    "fold_batch_norm",
    "for_inference",
    "jacobian_penalty",
    "list_models",
    "load_torchvision_weights",
    "model_info",
    "register_model",
]
