"""Training: a `tf.distribute` trainer with objectives, AdamW schedules, checkpoints and
TensorBoard logs, for pretraining and fine-tuning kerasllm models.

Example:
>>> from kerasllm.training import Trainer, TrainerConfig
>>> config = TrainerConfig(model_dir="/tmp/run", steps=1000, global_batch_size=32)
>>> config.checkpoint_every
1000
"""

from kerasllm.training import distribution, finetuning, objectives, optimization
from kerasllm.training.actions import TrainingHistory
from kerasllm.training.checkpointing import (
    Checkpointer,
    CheckpointError,
    ModelState,
    average_checkpoints,
    load_model_weights,
)
from kerasllm.training.config import TrainerConfig
from kerasllm.training.distribution import get_strategy, is_chief
from kerasllm.training.growth import grow_depth
from kerasllm.training.objectives import Objective
from kerasllm.training.optimization import AdamW, WarmupDecay, create_optimizer
from kerasllm.training.summaries import SummaryWriter
from kerasllm.training.trainer import Trainer, TrainingDivergedError

__all__ = [
    "AdamW",
    "CheckpointError",
    "Checkpointer",
    "Objective",
    "SummaryWriter",
    "Trainer",
    "TrainerConfig",
    "TrainingDivergedError",
    "TrainingHistory",
    "WarmupDecay",
    "average_checkpoints",
    "create_optimizer",
    "distribution",
    "finetuning",
    "get_strategy",
    "grow_depth",
    "is_chief",
    "load_model_weights",
    "ModelState",
    "objectives",
    "optimization",
]
