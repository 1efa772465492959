"""``nnUNetTrainerSegLoss``: nnU-Net v2's trainer with its loss replaced by any seglosses spec.

Everything but the loss is nnU-Net's (plans, network, augmentation, schedule, validation).
The loss is built by :func:`seglosses.integrations.nnunet.build_nnunet_loss` from, in order:

1. the class attribute ``seglosses_spec`` (set by ``seglosses nnunet install --loss SPEC``);
2. the environment variable ``SEGLOSSES_LOSS`` (``SEGLOSSES_LOSS="dice+topk(k=10)"``);
3. ``"dice_ce"`` (nnU-Net's own Dice + CE), with a note in the log.

The spec, the options nnU-Net's conventions added and the loss module are written to the
training log (``training_log_*.txt``) and to the logger's config. ``seglosses_epochs`` and
``seglosses_iterations_per_epoch`` (``install --epochs N --iterations-per-epoch M``) shorten
training; validation iterations then become ``max(1, M // 5)`` (nnU-Net's 250:50 ratio).

nnU-Net finds trainers only inside its own package: ``seglosses nnunet install`` writes a small
module there that imports this class (:mod:`seglosses.integrations.nnunet_cli`).
"""

from __future__ import annotations

import os

try:
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"seglosses.integrations.nnunet_trainer needs nnU-Net v2, which cannot be imported ({exc}); "
        'install it with: pip install "seglosses[nnunet]"'
    ) from exc

from .nnunet import DEFAULT_SPEC, ENV_VAR, build_nnunet_loss

__all__ = ["nnUNetTrainerSegLoss"]


class nnUNetTrainerSegLoss(nnUNetTrainer):
    """nnU-Net v2 trainer whose loss is a seglosses spec (see the module docstring)."""

    #: loss spec of a named variant (``None``: read ``SEGLOSSES_LOSS``)
    seglosses_spec = None
    #: short variants: number of epochs / training iterations per epoch (``None``: nnU-Net's)
    seglosses_epochs = None
    seglosses_iterations_per_epoch = None

    # nnU-Net records its __init__ arguments by inspecting the signature: keep it explicit
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.seglosses_epochs is not None:
            self.num_epochs = int(self.seglosses_epochs)
        if self.seglosses_iterations_per_epoch is not None:
            self.num_iterations_per_epoch = int(self.seglosses_iterations_per_epoch)
            self.num_val_iterations_per_epoch = max(1, int(self.seglosses_iterations_per_epoch) // 5)

    def seglosses_loss_spec(self) -> tuple:
        """``(spec, source)``: the spec this trainer trains with and where it came from."""
        if self.seglosses_spec:
            return self.seglosses_spec, f"{type(self).__name__}.seglosses_spec"
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            return env, ENV_VAR
        return DEFAULT_SPEC, "default"

    def _build_loss(self):
        spec, source = self.seglosses_loss_spec()
        levels = len(self._get_deep_supervision_scales()) if self.enable_deep_supervision else None
        lm = self.label_manager
        loss = build_nnunet_loss(
            spec,
            batch_dice=bool(self.configuration_manager.batch_dice),
            ignore_label=lm.ignore_label,
            has_regions=lm.has_regions,
            deep_supervision_levels=levels,
            ddp=self.is_ddp,
            compiled=self._do_i_compile(),
            source=source,
        )
        if source == "default":
            self.print_to_log_file(f"seglosses: no loss given ({ENV_VAR} is not set); using {DEFAULT_SPEC!r}")
        self.print_to_log_file(
            f"seglosses loss: {spec!r} (from {source}); batch_dice={bool(self.configuration_manager.batch_dice)}, "
            f"ignore_label={lm.ignore_label}, regions={lm.has_regions}, deep_supervision_levels={levels}\n{loss!r}"
        )
        self.seglosses_loss = spec
        if hasattr(self.logger, "update_config"):  # nnU-Net >= 2.6: config of the experiment loggers
            self.logger.update_config({"seglosses": {"loss": spec, "source": source}})
        return loss

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        if hasattr(self.loss, "set_epoch"):  # scheduled compounds (dice_bd, dice_hd)
            self.loss.set_epoch(self.current_epoch)
