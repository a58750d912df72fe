"""Training MT-UNet with the published recipe: presets, poly decay, 0.5 CE + 0.5 Dice.

``train(train_cfg, model_cfg, manifest_path, out_dir, live_dir)`` trains on a preprocessed
dataset (``dataset.json``) and writes

* ``out_dir/last.pt``: the resume state after every epoch (weights, optimizer, RNG states of
  every process, history, the best-validation epoch and its weights), written atomically;
* ``out_dir/model.pt``: the selected weights (``"optimizer": None``, ``"rng": None``), written
  when training ends;
* ``out_dir/train.json``: resolved configs, the selection rule and epoch, history, timings;
* DVCLive logs in ``live_dir``: ``train/loss`` and ``train/lr`` per step (DVCLive ``step``
  = optimizer steps taken), ``train/epoch_loss``, ``train/dice/<class>`` (hard Dice of the
  epoch's augmented training batches, per class) and ``val/dice`` per epoch, the resolved
  parameters.

Model selection never looks at the test split: ``selection="auto"`` keeps the epoch with the
best mean foreground Dice on the validation volumes when the dataset has them (ACDC), and
the last epoch otherwise (Synapse's published split has no validation cases).

The model's ``num_classes`` and ``in_channels`` always come from the dataset (they override
the ``model`` section); ``train.img_size``, when set, overrides ``model.img_size``.

Reproducibility: the same params give bit-identical weights on CPU, run after run, and a
run interrupted and restarted with the same params resumes from ``last.pt`` and ends with
the same weights as an uninterrupted one. Restarting with different params (every field
except ``num_workers``, ``pin_memory``, ``progress``, ``val_batch_size`` and ``resume``, or a
different model config, dataset or process count) starts afresh with a warning.

Several devices: DistributedDataParallel, one process per device, started by ``torchrun``
or by ``train.devices > 1``. ``batch_size`` is the *global* batch: each of the W processes
takes ``batch_size / W`` images per step (it must divide). The processes see the same global
batches as one process, without padding (the last, shorter batch is dealt out unevenly and
its cross-entropy weighted by each process's share); BatchNorm statistics and the soft Dice
sums are synchronised across processes, so a step equals the single-process step on the
same global batch up to float rounding. Only rank 0 logs and writes files.

The package, one concern per module:

* :mod:`~mtunet.training.config`: :class:`TrainConfig`, the presets, the runtime fields;
* :mod:`~mtunet.training.schedule`: :func:`poly_lr`;
* :mod:`~mtunet.training.validation`: training and validation Dice, the selection rule;
* :mod:`~mtunet.training.spec`: what one process runs (resolved configs, datasets);
* :mod:`~mtunet.training.build`: network (:func:`~mtunet.training.build.build_network`),
  optimizer, loss, sampler and DataLoader;
* :mod:`~mtunet.training.progress`: :class:`~mtunet.training.progress.Progress`, how far a
  run has got (epochs, steps, the best epoch, history);
* :mod:`~mtunet.training.state`: RNG states, finding a resumable ``last.pt``, checkpoint
  payloads;
* :mod:`~mtunet.training.live`: DVCLive logs;
* :mod:`~mtunet.training.epoch`: one epoch of optimizer steps;
* :mod:`~mtunet.training.loop`: the run's epochs, validation and checkpoints
  (:class:`~mtunet.training.loop.Trainer`);
* :mod:`~mtunet.training.launch`: :func:`train`, process spawning, devices, determinism.
"""

from __future__ import annotations

from mtunet.training.config import PRESETS, RUNTIME_FIELDS, TrainConfig
from mtunet.training.launch import train
from mtunet.training.schedule import poly_lr
from mtunet.training.validation import confusion_dice, foreground_dice, validation_dice

__all__ = [
    "PRESETS",
    "RUNTIME_FIELDS",
    "TrainConfig",
    "confusion_dice",
    "foreground_dice",
    "poly_lr",
    "train",
    "validation_dice",
]
