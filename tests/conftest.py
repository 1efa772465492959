"""Shared test helpers.

Reference libraries (MONAI, DeepMind surface-distance, kornia, medpy, scipy) are test
dependencies. Use :func:`require` instead of ``pytest.importorskip``: it skips only on a developer
machine, and FAILS when ``CI`` or ``SEGLOSSES_REQUIRE_REFERENCES`` is set, so CI can never go
green by silently skipping a reference comparison.
"""

from __future__ import annotations

import importlib
import os

import pytest

STRICT = bool(os.environ.get("CI") or os.environ.get("SEGLOSSES_REQUIRE_REFERENCES"))


def require(module: str):
    """Import a reference library; fail in CI, skip elsewhere, when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        if STRICT:
            pytest.fail(f"reference library {module!r} is required in CI but cannot be imported: {exc}")
        pytest.skip(f"reference library {module!r} not installed")
