"""Build script for the optional compiled CPU kernels (everything else is in pyproject.toml).

``seglosses._native._kernels`` is plain C (no PyTorch headers, so building needs no torch): a
fused softmax + label-map statistics kernel used by every multiclass loss on CPU float32
logits. The extension is *optional*: without a C compiler the install still succeeds and
seglosses falls back to the pure-PyTorch path (same values; ``seglosses._native.status()`` says
which one runs).
"""

import sys

from setuptools import Extension, setup

if sys.platform == "win32":
    compile_args, link_args = ["/O2"], []
else:
    # -fno-trapping-math lets GCC if-convert the float comparisons of the voxel loops (and so
    # vectorise them); -fopenmp-simd honours the `omp simd` pragmas without an OpenMP runtime.
    compile_args = ["-O3", "-fno-trapping-math", "-fno-math-errno", "-fopenmp-simd", "-pthread"]
    link_args = ["-pthread"]

setup(
    ext_modules=[
        Extension(
            "seglosses._native._kernels",
            sources=["src/seglosses/_native/softmax_stats.c"],
            define_macros=[("SL_PYTHON_MODULE", "1")],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            optional=True,
        )
    ]
)
