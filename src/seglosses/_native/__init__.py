"""Optional compiled CPU kernels: softmax over channels fused with label-map statistics.

Every multiclass loss with a label-map target needs the softmax ``p`` of the logits and some of
``tp``, ``sum p``, ``sum p^2``, the per-class voxel count and the per-voxel cross entropy
``-log p_true``. PyTorch computes these in one pass each (softmax, gather, scatter, sums, and
as many again backwards). ``softmax_stats.c`` computes all of them in **one pass** over the
logits, and the gradient with respect to the logits of *any* function of them in **one more
pass** (see :class:`SoftmaxLabelStats`). Measured in ``benchmarks/losses.py``.

The library is a small C extension built at install time (``setup.py``, no PyTorch headers)
and called through :mod:`ctypes`. It is optional: without a compiler, on other devices than the
CPU, for float64 logits (``gradcheck``) or with ``SEGLOSSES_NATIVE=0`` in the environment, the
pure-PyTorch path of :mod:`seglosses._stats` runs instead, with the same values to float32
rounding (tested: ``tests/test_native.py``). :func:`status` tells which path runs.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from typing import NamedTuple, Optional

import torch
from torch import Tensor

__all__ = ["status", "enabled", "library", "use_openmp", "softmax_label_stats", "NativeStats"]

_ABI = 2
_lib: Optional[ctypes.CDLL] = None
_error: Optional[str] = None
_loaded = False
_lock = threading.Lock()


def library() -> Optional[ctypes.CDLL]:
    """The loaded kernel library, or ``None`` when it was not built (see :func:`status`)."""
    if _loaded:
        return _lib
    with _lock:  # runs of the benchmark's thread executor may arrive here together
        if not _loaded:
            _load()
    return _lib


def _load() -> None:
    global _lib, _error, _loaded
    try:
        spec = importlib.util.find_spec("seglosses._native._kernels")
        if spec is None or not spec.origin:
            raise ImportError("the extension seglosses._native._kernels was not built (no C compiler at install time?)")
        lib = ctypes.CDLL(spec.origin)
        if lib.sl_abi_version() != _ABI:
            raise ImportError(f"kernel ABI {lib.sl_abi_version()} != {_ABI}: reinstall seglosses")
        vp, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
        lib.sl_softmax_stats_forward.argtypes = [vp, vp, vp, i64, i64, i64, vp, vp, vp, i64, vp, i32]
        lib.sl_softmax_stats_forward.restype = i32
        lib.sl_softmax_stats_backward.argtypes = [vp, vp, vp, i64, i64, i64, vp, vp, vp, vp, vp, vp, vp, i64, vp, i32]
        lib.sl_softmax_stats_backward.restype = i32
        lib.sl_set_openmp.argtypes = [vp, vp, vp]
        lib.sl_set_openmp.restype = i32
        _configure_threads(lib, os.environ.get("SEGLOSSES_NATIVE_THREADS", "openmp").strip().lower() != "pthreads")
        _lib = lib
    except (ImportError, OSError, AttributeError) as exc:
        _error = str(exc)
        _lib = None
    _loaded = True


_openmp: Optional[str] = None


def _torch_openmp_runtime() -> Optional[str]:
    """Path of the OpenMP runtime that PyTorch loaded (Linux: from ``/proc/self/maps``), if any;
    a runtime inside PyTorch's own ``lib`` folder is preferred."""
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split(None, 5)[-1].strip() for line in fh if "omp" in line}
    except OSError:
        return None
    names = ("libgomp", "libiomp5", "libomp")
    found = sorted(p for p in paths if p.startswith("/") and os.path.basename(p).startswith(names))
    torch_dir = os.path.dirname(torch.__file__)
    found.sort(key=lambda p: not p.startswith(torch_dir))
    return found[0] if found else None


def use_openmp(on: bool = True) -> Optional[str]:
    """Run the kernels' threads on PyTorch's OpenMP team (the default) or on POSIX threads.

    PyTorch's idle OpenMP threads busy-wait after each op; threads of our own would compete with
    them for the cores. Returns the runtime's path, or ``None`` (POSIX threads) when ``on`` is
    false or no OpenMP runtime exporting ``GOMP_parallel`` is loaded. Also set by the
    environment variable ``SEGLOSSES_NATIVE_THREADS=pthreads``.
    """
    lib = library()
    return None if lib is None else _configure_threads(lib, on)


def _configure_threads(lib: ctypes.CDLL, on: bool) -> Optional[str]:
    global _openmp
    path = _torch_openmp_runtime() if on else None
    addrs = None
    if path is not None:
        try:
            omp = ctypes.CDLL(path)  # already loaded by PyTorch: the same handle
            addrs = [ctypes.cast(getattr(omp, name), ctypes.c_void_p).value
                     for name in ("GOMP_parallel", "omp_get_thread_num", "omp_get_num_threads")]
        except (OSError, AttributeError):
            addrs = None
    if addrs and all(addrs):
        lib.sl_set_openmp(*addrs)
        _openmp = path
    else:
        lib.sl_set_openmp(None, None, None)
        _openmp = None
    return _openmp


def enabled() -> bool:
    """Whether the compiled kernels run: built, loaded, and not disabled by ``SEGLOSSES_NATIVE=0``."""
    if os.environ.get("SEGLOSSES_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return library() is not None


def status() -> str:
    """One line saying which path the multiclass label-map losses take on the CPU, and why."""
    if os.environ.get("SEGLOSSES_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return "pure PyTorch (compiled kernels disabled by SEGLOSSES_NATIVE=0)"
    if library() is None:
        return f"pure PyTorch (compiled kernels unavailable: {_error})"
    threads = f"threads of PyTorch's OpenMP runtime {_openmp}" if _openmp else "POSIX threads"
    return f"compiled kernels (seglosses._native, float32 CPU logits; PyTorch elsewhere), {threads}"


class NativeStats(NamedTuple):
    """Outputs of :func:`softmax_label_stats`; statistics are ``(N, C)``, summed in float64."""

    p: Tensor  # (N, C, *spatial) softmax
    tp: Tensor  # sum_{i in c} v_i p_ic
    sum_p: Tensor  # sum_i v_i p_ic
    sum_p2: Tensor  # sum_i v_i p_ic^2
    t2: Tensor  # sum_{i in c} v_i p_ic^2
    nll: Optional[Tensor]  # (N, *spatial) -log p_{i, l_i}, exact (log-sum-exp); None unless asked for
    count: Tensor  # sum_{i in c} v_i (no gradient)
    l1m: Optional[Tensor] = None  # (N, *spatial) sum_{c >= k0, c != l_i} log(1 - p_ic); None unless asked for
    l1m_from: Optional[int] = None  # its k0


def _ptr(t: Optional[Tensor]) -> Optional[int]:
    return None if t is None else t.data_ptr()


def _threads(numel: int) -> int:
    return max(1, min(torch.get_num_threads(), numel // 32768 or 1))


class SoftmaxLabelStats(torch.autograd.Function):
    """Softmax and label-map statistics in one pass; gradient to the logits in one pass.

    Forward, for logits ``z`` ``(N, C, S)``, labels ``l`` ``(N, S)`` and voxel weights ``v``
    (the ignore mask): ``p = softmax(z)``, ``tp_c = sum_{l_i = c} v_i p_ic``,
    ``sp_c = sum_i v_i p_ic``, ``sp2_c = sum_i v_i p_ic^2``, ``t2_c = sum_{l_i = c} v_i p_ic^2``,
    ``nll_i = log sum_c exp(z_ic) - z_{i l_i}`` and the counts ``sum_{l_i = c} v_i``.

    Optionally (Combo loss) ``l1m_i = sum_{c >= k0, c != l_i} log(1 - p_ic)``.

    Backward, for incoming gradients ``gp`` (of ``p``), ``a, a2, b, e`` (of ``sp, sp2, tp, t2``)
    and ``h`` (of ``nll``)::

        q_ic = p_ic (gp_ic + v_i (a_c + 2 a2_c p_ic)) + [l_i = c] (v_i p_ic (b_c + 2 e_c p_ic) - h_i)
        dL/dz_ic = q_ic - p_ic sum_k q_ik

    (``q_ic = p_ic dL/dp_ic``; this is the softmax backward with every path into ``p`` added
    first, so one pass serves a compound loss whose terms use several of the outputs.) A
    gradient ``h2`` of ``l1m`` adds ``-h2_i p_ic / (1 - p_ic)`` to ``q_ic`` for the kept classes
    other than the label, with the one class above 1/2 in closed form (bounded for any logits).
    """

    @staticmethod
    def forward(ctx, z: Tensor, lab: Tensor, valid: Optional[Tensor], want_nll: bool, l1m_from: int):
        ctx.set_materialize_grads(False)
        lib = library()
        n, c = z.shape[:2]
        s = z[0, 0].numel() if z.numel() else 0
        p = torch.empty_like(z)
        nll = torch.empty(lab.shape if want_nll else (0,), dtype=z.dtype)
        l1m = torch.empty(lab.shape if l1m_from >= 0 else (0,), dtype=z.dtype)
        stats = torch.zeros((n, c, 5), dtype=torch.float64)
        if n * s:
            rc = lib.sl_softmax_stats_forward(
                _ptr(z), _ptr(lab), _ptr(valid), n, c, s, _ptr(p), _ptr(nll) if want_nll else None,
                _ptr(l1m) if l1m_from >= 0 else None, max(l1m_from, 0), _ptr(stats), _threads(z.numel()),
            )
            if rc != 0:
                raise MemoryError("seglosses._native: the forward kernel could not allocate its thread buffers")
        st = stats.to(z.dtype).unbind(2)
        count = st[4].contiguous()
        ctx.mark_non_differentiable(count)
        if not want_nll:
            ctx.mark_non_differentiable(nll)
        if l1m_from < 0:
            ctx.mark_non_differentiable(l1m)
        ctx.save_for_backward(p, lab, valid)
        ctx.shape, ctx.k0 = z.shape, max(l1m_from, 0)
        return p, st[0].contiguous(), st[1].contiguous(), st[2].contiguous(), st[3].contiguous(), nll, count, l1m

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_p, g_tp, g_sp, g_sp2, g_t2, g_nll, _g_count, g_l1m):
        p, lab, valid = ctx.saved_tensors
        if all(g is None for g in (g_p, g_tp, g_sp, g_sp2, g_t2, g_nll, g_l1m)):
            return None, None, None, None, None
        n, c = p.shape[:2]
        s = p[0, 0].numel() if p.numel() else 0
        zeros = torch.zeros((n, c), dtype=p.dtype)

        def coef(g):
            return zeros if g is None else g.to(p.dtype).contiguous()

        a, a2, b, e = coef(g_sp), coef(g_sp2), coef(g_tp), coef(g_t2)
        gp = None if g_p is None else g_p.to(p.dtype).contiguous()
        h = None if g_nll is None or g_nll.numel() != lab.numel() else g_nll.to(p.dtype).contiguous()
        h2 = None if g_l1m is None or g_l1m.numel() != lab.numel() else g_l1m.to(p.dtype).contiguous()
        grad = torch.empty_like(p)
        if n * s:
            rc = library().sl_softmax_stats_backward(
                _ptr(p), _ptr(lab), _ptr(valid), n, c, s, _ptr(gp), _ptr(a), _ptr(a2), _ptr(b), _ptr(e), _ptr(h),
                _ptr(h2), ctx.k0, _ptr(grad), _threads(p.numel()),
            )
            if rc != 0:
                raise MemoryError("seglosses._native: the backward kernel could not allocate its thread buffers")
        return grad.view(ctx.shape), None, None, None, None


def softmax_label_stats(
    logits: Tensor, labels: Tensor, valid: Optional[Tensor], *, want_nll: bool = True, l1m_from: Optional[int] = None
) -> Optional[NativeStats]:
    """Softmax of ``logits`` ``(N, C, *spatial)`` and the label-map statistics of ``labels``
    ``(N, *spatial)`` (int64 in ``[0, C)``; ignored voxels carry ``valid`` = 0), or ``None`` when
    the compiled path does not apply (disabled or not built, not on the CPU, not float32 /
    float16 / bfloat16 logits, fewer than 2 classes). ``want_nll=False`` skips the per-voxel
    cross entropy (``nll`` is then ``None``). ``l1m_from=k0`` adds the per-voxel
    ``sum_{c >= k0, c != l_i} log(1 - p_ic)`` of a one-vs-rest BCE (Combo loss)."""
    if (
        logits.device.type != "cpu"
        or logits.dtype not in (torch.float32, torch.float16, torch.bfloat16)
        or logits.ndim < 3
        or logits.shape[1] < 2
        or labels.dtype != torch.int64
        or not enabled()
    ):
        return None
    z = logits.to(torch.float32).contiguous()
    lab = labels.contiguous()
    v = None if valid is None else valid.to(torch.float32).contiguous()
    k0 = -1 if l1m_from is None else int(l1m_from)
    p, tp, sp, sp2, t2, nll, count, l1m = SoftmaxLabelStats.apply(z, lab, v, bool(want_nll), k0)
    return NativeStats(p, tp, sp, sp2, t2, nll if want_nll else None, count, l1m if k0 >= 0 else None, l1m_from)


# ----------------------------------------------------------------------------- `seglosses info`

def configure_info(parser) -> None:
    parser.epilog = "Environment: SEGLOSSES_NATIVE=0 disables the kernels; SEGLOSSES_NATIVE_THREADS=pthreads."


def run_info(args) -> int:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("seglosses")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        ours = "(not installed)"
    print(f"seglosses {ours}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"CUDA {'available' if torch.cuda.is_available() else 'not available'}")
    print(f"multiclass label-map losses on the CPU: {status()}")
    return 0

