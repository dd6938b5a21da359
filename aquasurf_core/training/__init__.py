"""Training networks with a searched activation function: data (MNIST-1D generated locally,
CIFAR from disk), recipes, the one-at-a-time reference trainer and the grouped trainer that
fuses many functions into one model.

* :mod:`~aquasurf_core.training.data` -- MNIST-1D with a balanced validation split.
* :mod:`~aquasurf_core.training.cifar` -- CIFAR-10/100 with the paper's input pipelines.
* :mod:`~aquasurf_core.training.image_folder` -- ImageNet-style folders (MobileViTv2, ResNet-50).
* :mod:`~aquasurf_core.training.digits` -- scikit-learn's 8x8 digits.
* :mod:`~aquasurf_core.training.recipes` -- optimiser, schedule, epochs per architecture.
* :mod:`~aquasurf_core.training.results` -- :class:`RunResult`, the record of one run.
* :mod:`~aquasurf_core.training.reference` -- :func:`train_one`, the slow obvious trainer.
* :mod:`~aquasurf_core.training.grouped` -- :func:`train_grouped`, K functions in one model.
* :mod:`~aquasurf_core.training.loader_training` -- :func:`train_with_loaders`, the full-size
  tasks' trainer (DataLoaders, CPU or GPU, Mixup/CutMix).
"""

from aquasurf_core.training.data import Split, Splits, load_mnist1d
from aquasurf_core.training.grouped import train_grouped
from aquasurf_core.training.recipes import RECIPES, Recipe, get_recipe
from aquasurf_core.training.reference import evaluate_split, train_one
from aquasurf_core.training.results import RunResult

__all__ = ["Splits", "RECIPES", "Recipe", "RunResult", "Split", "evaluate_split", "get_recipe",
           "load_mnist1d", "train_grouped", "train_one"]
