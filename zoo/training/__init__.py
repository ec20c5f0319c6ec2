"""Training for the model zoo (``dgm train``): loop, losses, schedule, checkpoints, recipes.

``train(TrainConfig(...))`` runs clean or adversarial CNN-F training (original-cnnf.md §C)
with resumable checkpoints and a JSONL log; datasets plug in as ``recipes.Recipe``.
"""
from . import cifar, fashion  # noqa: F401  (recipe modules register their datasets)
from .checkpoint import load_checkpoint, save_checkpoint
from .export import load_trained
from .losses import adversarial_loss, clean_loss
from .loop import (TrainConfig, TrainingDiverged, TrainingInterrupted, evaluate,
                   feedback_warning, total_steps, train)
from .recipes import RECIPES, Recipe, get_recipe, register_recipe
from .schedule import poly_lr

__all__ = ["RECIPES", "Recipe", "TrainConfig", "TrainingDiverged", "TrainingInterrupted",
           "adversarial_loss", "clean_loss", "evaluate", "feedback_warning", "get_recipe",
           "load_checkpoint", "load_trained", "poly_lr", "register_recipe", "save_checkpoint",
           "total_steps", "train"]
