"""keras-subset: train Keras models faster by first fitting a subset of the data to its minimum.

Public API:

- `LBFGS`: TensorFlow Probability's full-batch L-BFGS on any Keras model.
- `SubsetPretraining`: a `model.fit` callback that fits a subset to its minimum
  first, then lets `fit` fine-tune on all the data.
- `overdetermination_ratio`, `subset_size_for_ratio`: Q = K*M/P and its inverse.
- `select_subset`: random or class-balanced subset indices.
- `DeadModelWarning`: a `pretrain` stage or an `LBFGS.minimize` run ended at a
  model whose outputs are the same for every example (a dead network, not a minimum).
- `SavingWarning`: `pretrain` says that subset pretraining is unlikely to save
  compute for the model and data given (Q_full below the measured threshold).
"""

from keras_subset.callback import SubsetPretraining
from keras_subset.dead_model import DeadModelWarning
from keras_subset.lbfgs import LBFGS
from keras_subset.minimize import LBFGSResult
from keras_subset.pretrain import PretrainResult, Stage, pretrain
from keras_subset.subset import SavingWarning, overdetermination_ratio, select_subset, subset_size_for_ratio

__version__ = "0.1.0"

__all__ = [
    "LBFGS",
    "LBFGSResult",
    "DeadModelWarning",
    "SubsetPretraining",
    "PretrainResult",
    "SavingWarning",
    "Stage",
    "overdetermination_ratio",
    "pretrain",
    "select_subset",
    "subset_size_for_ratio",
]
