"""``ddp=True``: batch losses under DistributedDataParallel equal the loss on the global batch.

Two processes (``torch.multiprocessing`` spawn, gloo, CPU) each train a tiny float64 conv net
wrapped in DDP on its shard of a global batch of 4 samples (2 + 2, or 1 + 3 for the ``-uneven``
cases). For every registered loss with a
``batch`` argument (read from the registry metadata), in every mode it supports, and for
compound specs whose terms have one, the test checks:

* the loss value of each rank equals the single-process loss on the concatenated batch
  (``batch=True``; for a compound or ``batch=False``, where a term stays per rank, the mean over
  ranks does);
* after DDP averages the gradients, the model's parameter gradients equal the single-process
  gradients on the concatenated batch.

All cases run in one spawn (a module fixture); each case is then its own test.
"""

from __future__ import annotations

import os
import pickle

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from seglosses import build_loss, list_losses, loss_info

WORLD = 2
N_GLOBAL = 4
BATCH_LOSSES = [n for n in list_losses() if "batch" in loss_info(n).defaults]


def _cases():
    """(id, spec, mode, build options, dtype, ignore): every batch loss in each of its modes."""
    out = []
    for name in BATCH_LOSSES:
        for mode in loss_info(name).modes:
            ignore = mode != "multilabel"  # label maps only
            out.append((f"{name}-{mode}", name, mode, {"batch": True, "ddp": True}, torch.float64, ignore))
    out += [
        # per-sample statistics: nothing pooled, DDP's averaging alone is exact (equal shards)
        ("dice-multiclass-sample", "dice", "multiclass", {"batch": False, "ddp": True}, torch.float64, True),
        # ELL's label frequencies are global even per sample
        ("ell-multiclass-sample", "ell", "multiclass", {"batch": False, "ddp": True}, torch.float64, True),
        ("ell-binary-sample", "ell", "binary", {"batch": False, "ddp": True}, torch.float64, True),
        # compound specs pass ddp (and batch) to their batch terms; the CE term stays per rank
        ("dice_ce-multiclass", "dice_ce", "multiclass", {"batch": True, "ddp": True}, torch.float64, False),
        ("dice+tversky-binary", "dice+tversky", "binary", {"batch": True, "ddp": True}, torch.float64, True),
        # options that act after the pooling
        ("dice-multiclass-micro", "dice", "multiclass", {"batch": True, "ddp": True, "average": "micro"}, torch.float64, True),
        ("iou-multilabel-soft_label", "iou", "multilabel", {"batch": True, "ddp": True, "soft_label": True}, torch.float64, False),
        # uneven shards (1 and 3 samples): pooled statistics are still exact
        ("dice-multiclass-uneven", "dice", "multiclass", {"batch": True, "ddp": True}, torch.float64, True),
        ("gdice-binary-uneven", "gdice", "binary", {"batch": True, "ddp": True}, torch.float64, True),
        ("combo-multiclass-uneven", "combo", "multiclass", {"batch": True, "ddp": True}, torch.float64, True),
        # float32 label maps take the compiled CPU kernels: same all-reduce afterwards
        ("dice-multiclass-float32", "dice", "multiclass", {"batch": True, "ddp": True}, torch.float32, True),
        ("combo-multiclass-float32", "combo", "multiclass", {"batch": True, "ddp": True}, torch.float32, True),
    ]
    return out


CASES = _cases()


def _data(mode: str, dtype: torch.dtype, ignore: bool):
    """A tiny conv net and a global batch (inputs, target), identical in every process."""
    g = torch.Generator().manual_seed(1234)
    c = 1 if mode == "binary" else 3
    net = torch.nn.Conv2d(2, c, 3, padding=1).to(dtype)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * 0.5)
    x = torch.randn(N_GLOBAL, 2, 6, 5, generator=g, dtype=dtype)
    if mode == "multiclass":
        target = torch.randint(0, c, (N_GLOBAL, 6, 5), generator=g)
        target[1] = target[1].clamp_max(1)  # class 2 absent from rank 0's shard (samples 0, 1) ...
        target[0] = target[0].clamp_max(1)  # ... but present in the global batch
    elif mode == "binary":
        target = (torch.rand(N_GLOBAL, 6, 5, generator=g) > 0.6).long()
    else:
        target = (torch.rand(N_GLOBAL, c, 6, 5, generator=g) > 0.6).to(dtype)
    if ignore:
        target[:, 0, :2] = 255  # 255 is ignored; a different number of voxels per sample
        target[3, 1, :] = 255
    return net, x, target


def _loss(spec: str, mode: str, options: dict, ignore: bool):
    contract = {"mode": mode, "ignore_index": 255 if ignore else None}
    return build_loss(spec, **contract, **options)


def _run_case(case, rank: int | None):
    """Loss value and parameter gradients: on the whole batch (rank None) or on a DDP shard."""
    _, spec, mode, options, dtype, ignore = case
    net, x, target = _data(mode, dtype, ignore)
    if rank is None:
        options = {**options, "ddp": False}
        model = net
    else:
        bounds = [0, 1, N_GLOBAL] if case[0].endswith("-uneven") else [0, N_GLOBAL // 2, N_GLOBAL]
        x, target = x[bounds[rank] : bounds[rank + 1]], target[bounds[rank] : bounds[rank + 1]]
        model = torch.nn.parallel.DistributedDataParallel(net)
    loss = _loss(spec, mode, options, ignore)(model(x), target)
    loss.backward()
    return float(loss.detach()), [p.grad.detach().clone() for p in net.parameters()]


def _worker(rank: int, world: int, tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world)
    try:
        results = {case[0]: _run_case(case, rank) for case in CASES}
    finally:
        dist.destroy_process_group()
    with open(os.path.join(tmp, f"rank{rank}.pkl"), "wb") as f:
        pickle.dump(results, f)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("ddp"))
    mp.spawn(_worker, args=(WORLD, tmp), nprocs=WORLD, join=True)
    out = []
    for r in range(WORLD):
        with open(os.path.join(tmp, f"rank{r}.pkl"), "rb") as f:
            out.append(pickle.load(f))
    return out


def _pooled(case) -> bool:
    """Whether every term pools over the global batch (then each rank's value is the global one)."""
    _, spec, _, options, _, _ = case
    return options["batch"] and spec in BATCH_LOSSES


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_ddp_equals_concatenated_batch(ranks, case):
    tol = {"rtol": 1e-10, "atol": 1e-12} if case[4] == torch.float64 else {"rtol": 2e-5, "atol": 1e-6}
    value, grads = _run_case(case, None)
    values = [ranks[r][case[0]][0] for r in range(WORLD)]
    if _pooled(case):
        for r, v in enumerate(values):
            torch.testing.assert_close(v, value, **tol, msg=lambda m: f"rank {r} value: {m}")
    else:
        torch.testing.assert_close(sum(values) / WORLD, value, **tol)
    for r in range(WORLD):
        for i, (got, want) in enumerate(zip(ranks[r][case[0]][1], grads)):
            torch.testing.assert_close(got, want, **tol, msg=lambda m: f"rank {r}, parameter {i}: {m}")


def test_without_ddp_the_shards_differ(ranks):
    """The check has teeth: per-rank batch Dice (ddp=False) is not the global batch Dice."""
    case = ("dice-multiclass", "dice", "multiclass", {"batch": True, "ddp": False}, torch.float64, True)
    value, _ = _run_case(case, None)
    net, x, target = _data("multiclass", torch.float64, True)
    loss = _loss("dice", "multiclass", {"batch": True}, True)
    with torch.no_grad():
        per_rank = [float(loss(net(x[2 * r : 2 * r + 2]), target[2 * r : 2 * r + 2])) for r in range(WORLD)]
    assert abs(sum(per_rank) / WORLD - value) > 1e-3
    assert abs(ranks[0]["dice-multiclass"][0] - value) < 1e-12


def test_every_batch_loss_accepts_ddp():
    assert BATCH_LOSSES, "no registered loss has a batch argument"
    for name in BATCH_LOSSES:
        assert loss_info(name).defaults["ddp"] is False, name


@pytest.mark.parametrize("batch", [True, False])
def test_ddp_without_process_group_raises(batch):
    assert not dist.is_initialized()
    logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    with pytest.raises(RuntimeError, match=r"ddp: .*init_process_group"):
        build_loss("dice", batch=batch, ddp=True)(logits, target)
    with pytest.raises(RuntimeError, match=r"ddp: .*init_process_group"):
        build_loss("dice_ce", batch=batch, ddp=True)(logits, target)


def test_ddp_must_be_a_bool():
    logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    with pytest.raises(TypeError, match=r"ddp: expected True or False, got 'yes'"):
        build_loss("dice", batch=True, ddp="yes")(logits, target)


@pytest.mark.parametrize("spec,opts", [("dice+ce", {"batch": True, "ddp": True}),
                                       ("dice+ce", {"dice": {"batch": True, "ddp": True}}),
                                       ("dice_ce", {"batch": True, "ddp": True})])
def test_compound_per_sample_with_ddp_batch_term_raises(spec, opts):
    """A per-sample loss of a globally pooled batch statistic is not defined; it used to run one
    all-reduce per local sample (mixing ranks, hanging on uneven shards). Checked when built."""
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match=r"reduction: 'none'.*'dice'.*batch=True and ddp=True"):
        build_loss(spec, reduction="none", **opts)
    # the other combinations stay allowed
    build_loss(spec, reduction="mean", **opts)
    per_sample = build_loss("dice+ce", reduction="none", batch=True)
    assert per_sample(torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))).shape == (2,)


class _TwoHeads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.head0 = torch.nn.Conv2d(4, 3, 1)
        self.head1 = torch.nn.Conv2d(4, 3, 1)

    def forward(self, x):
        h = self.body(x)
        return [self.head0(h), self.head1(torch.nn.functional.avg_pool2d(h, 2))]


def _zero_weight_worker(rank: int, world: int, tmp: str) -> None:
    from seglosses import DeepSupervision

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(_TwoHeads())
        loss = DeepSupervision("dice+ce")  # weights "nnunet": [1, 0] for two outputs
        assert loss.weights_for(2) == [1.0, 0.0]
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x = torch.randn(2, 1, 8, 8)
        y = torch.randint(0, 3, (2, 8, 8))
        for _ in range(2):  # the second iteration is where DDP complains about unused parameters
            opt.zero_grad()
            loss(model(x), y).backward()
            opt.step()
        zero = torch.equal(model.module.head1.weight.grad, torch.zeros_like(model.module.head1.weight))
        with open(os.path.join(tmp, "result.txt"), "w") as f:
            f.write("zero" if zero else "nonzero")
        del model, opt  # the DDP reducer goes before its process group (else gloo's destructor can hang)
    finally:
        dist.destroy_process_group()


def test_deep_supervision_zero_weight_head_under_ddp(tmp_path):
    """Default weights="nnunet" give the lowest output weight 0; its head must stay in the graph or
    DDP fails on the second iteration ("Expected to have finished reduction ..."). Run in a spawned
    process, as the other DDP tests, so the test process never holds a process group."""
    mp.spawn(_zero_weight_worker, args=(1, str(tmp_path)), nprocs=1, join=True)
    assert (tmp_path / "result.txt").read_text() == "zero"
