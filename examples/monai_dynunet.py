"""Train MONAI's DynUNet with deep supervision and a seglosses loss (a runnable example).

    python examples/monai_dynunet.py --steps 200

What it shows:

* ``seglosses.DeepSupervision`` wraps any seglosses spec (here ``dice+ce`` with batch Dice) and
  weights the network's outputs (``weights="exp"``: MONAI's 1, 1/2, 1/4, ...; ``"nnunet"``: nnU-Net's).
* MONAI's ``DynUNet(deep_supervision=True)`` returns, in training mode, one tensor
  ``(N, 1 + deep_supr_num, C, *spatial)`` whose outputs are all upsampled to full resolution:
  ``torch.unbind(out, dim=1)`` gives the list ``DeepSupervision`` takes (full resolution first). A
  network that returns lower-resolution outputs instead needs nothing else: the label map is
  downsampled (nearest) to each output's size.
* The target is a plain integer label map ``(N, H, W)``: no one-hot, no ``to_onehot_y`` /
  ``softmax`` flags (seglosses takes logits and label maps by default).

The data are synthetic (bright disks on noise), generated from ``--seed``; the script prints the
loss and the foreground Dice of the prediction on held-out images.
"""

from __future__ import annotations

import argparse

import torch
from monai.networks.nets import DynUNet

import seglosses
from seglosses.metrics import dice_score


def make_batch(n: int, size: int, generator: torch.Generator):
    """Images ``(n, 1, size, size)`` with 1-3 bright disks each, and their label maps ``(n, size, size)``."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    labels = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        for _ in range(int(torch.randint(1, 4, (1,), generator=generator))):
            cy, cx = torch.randint(4, size - 4, (2,), generator=generator).tolist()
            r = int(torch.randint(2, max(3, size // 6), (1,), generator=generator))
            labels[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
    images = labels[:, None].float() + 0.5 * torch.randn(n, 1, size, size, generator=generator)
    return images, labels


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--loss", default="dice+ce", help="any seglosses spec")
    parser.add_argument("--weights", default="exp", help="nnunet | exp | same")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    model = DynUNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=2,
        kernel_size=[3, 3, 3],
        strides=[1, 2, 2],
        upsample_kernel_size=[2, 2],
        filters=[8, 16, 32],
        deep_supervision=True,
        deep_supr_num=1,
    )
    loss_fn = seglosses.DeepSupervision(args.loss, weights=args.weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    losses = []
    model.train()
    for step in range(args.steps):
        images, labels = make_batch(args.batch_size, args.size, g)
        out = model(images)  # (N, 1 + deep_supr_num, C, H, W) in training mode
        loss = loss_fn(list(torch.unbind(out, dim=1)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {losses[-1]:.4f}  per level {loss_fn.last_levels}")

    model.eval()
    with torch.no_grad():
        images, labels = make_batch(16, args.size, g)
        pred = model(images).argmax(1)  # eval mode: the full-resolution output only
    dice = sum(dice_score(labels[i] == 1, pred[i] == 1) for i in range(len(labels))) / len(labels)
    print(f"held-out foreground Dice {dice:.3f}")
    return {"losses": losses, "dice": dice}


if __name__ == "__main__":
    main()
