"""Where the ONNX Runtime library is: the Rust core loads the `onnxruntime` wheel's own copy."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Optional

_PATTERNS = ("libonnxruntime.so*", "libonnxruntime*.dylib", "onnxruntime.dll")


def library_path() -> Optional[str]:
    """``ORT_DYLIB_PATH`` when set, else the shared library inside the installed ``onnxruntime``
    package (found without importing it), else None (the path baked in at build time, if any)."""
    env = os.environ.get("ORT_DYLIB_PATH")
    if env:
        return env
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        capi = Path(root) / "capi"
        for pattern in _PATTERNS:
            found = sorted(p for p in capi.glob(pattern) if "providers" not in p.name)
            if found:
                return str(found[0])
    return None
