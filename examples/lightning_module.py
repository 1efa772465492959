"""A PyTorch Lightning module trained with a seglosses loss (a runnable example).

    python examples/lightning_module.py --steps 200 --loss "dice_bd"

What it shows:

* the loss is built once from a spec (``seglosses.build_loss``) and is an ordinary ``nn.Module``
  attribute of the LightningModule (it moves with ``.to(device)``, has no parameters);
* compound losses report their terms after each call (``loss.last_terms``): they are logged
  beside the total;
* scheduled compounds (``dice_bd``: the boundary loss's rebalancing, Kervadec et al.) need
  ``loss.set_epoch(epoch)`` at the start of each epoch: ``on_train_epoch_start`` does it;
* targets are integer label maps ``(N, H, W)``; the loss takes the raw logits.

Data: synthetic bright disks on noise generated from ``--seed`` (no download).
"""

from __future__ import annotations

import argparse

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import seglosses


def make_data(n: int, size: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    labels = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        cy, cx = torch.randint(4, size - 4, (2,), generator=g).tolist()
        r = int(torch.randint(2, max(3, size // 5), (1,), generator=g))
        labels[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    images = labels[:, None].float() + 0.5 * torch.randn(n, 1, size, size, generator=g)
    return TensorDataset(images, labels)


class SegModule(L.LightningModule):
    """A tiny fully convolutional network; ``loss`` is any seglosses spec with its options."""

    def __init__(self, loss: str = "dice+ce", lr: float = 1e-2, num_classes: int = 2, **loss_options):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.InstanceNorm2d(16, affine=True), nn.LeakyReLU(0.01),
            nn.Conv2d(16, 16, 3, padding=2, dilation=2), nn.InstanceNorm2d(16, affine=True), nn.LeakyReLU(0.01),
            nn.Conv2d(16, num_classes, 1),
        )
        self.loss = seglosses.build_loss(loss, **loss_options)

    def forward(self, x):
        return self.net(x)

    def on_train_epoch_start(self):
        self.loss.set_epoch(self.current_epoch)  # scheduled compounds; a no-op otherwise

    def training_step(self, batch, batch_idx):
        images, labels = batch
        loss = self.loss(self(images), labels)
        self.log("train/loss", loss, prog_bar=True)
        for name, value in getattr(self.loss, "last_terms", {}).items():  # compound losses
            self.log(f"train/{name}", value)
        return loss

    def validation_step(self, batch, batch_idx):
        images, labels = batch
        pred = self(images).argmax(1)
        inter = ((pred == 1) & (labels == 1)).sum()
        dice = 2 * inter / ((pred == 1).sum() + (labels == 1).sum()).clamp_min(1)
        self.log("val/dice", dice.float(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--loss", default="dice+ce", help="any seglosses spec, e.g. 'dice_bd', '0.5*dice+topk'")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    L.seed_everything(args.seed, verbose=False)
    train = DataLoader(make_data(64, args.size, args.seed), batch_size=8, shuffle=True)
    val = DataLoader(make_data(16, args.size, args.seed + 1), batch_size=16)
    module = SegModule(loss=args.loss)
    trainer = L.Trainer(
        max_steps=args.steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=1,
        val_check_interval=min(args.steps, 8),
        check_val_every_n_epoch=None,
    )
    trainer.fit(module, train, val)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    print(f"loss {args.loss!r}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items())))
    return metrics


if __name__ == "__main__":
    main()
