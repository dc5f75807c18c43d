"""Optional dependencies: imported on first use, and when missing, the extra that brings them.

The wheel has no runtime dependency (it goes into Odoo containers whose pins must not move);
the guard and the emulator's webhooks need a library each, declared as extras.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """``module``, or ImportError: "<purpose>: <module> is not installed (pip install ...)"."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{purpose}: {module} is not installed (pip install 'plane_connector[{extra}]')"
        ) from None
