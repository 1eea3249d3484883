"""Training and using models: ``fit``, presets, checkpoints, ``evaluate``, ``predict``, ``load_model``."""

from squeezelab.train.config import PRESETS, TrainConfig, preset
from squeezelab.train.evaluate import evaluate, load_model, predict
from squeezelab.train.trainer import History, TrainingDiverged, fit

__all__ = [
    "PRESETS",
    "History",
    "TrainConfig",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "load_model",
    "predict",
    "preset",
]
