"""Integrations with training frameworks.

* :mod:`seglosses.integrations.nnunet`: the loss nnU-Net v2 trains with, built from a seglosses
  spec with nnU-Net's conventions (batch Dice from the plans, ignore label, regions, deep
  supervision weights); :mod:`~seglosses.integrations.nnunet_trainer` holds the trainer
  ``nnUNetTrainerSegLoss`` and :mod:`~seglosses.integrations.nnunet_cli` the
  ``seglosses nnunet install | uninstall`` command that makes it visible to ``nnUNetv2_train``.

MONAI and PyTorch Lightning take any ``nn.Module`` loss and need no adapter: see
``docs/integrations.md`` and the scripts in ``examples/``.
"""
