"""Fixtures: bundles of the three architectures on the real all-MiniLM-L6-v2 (from `make setup`),
exported by the repo's own `zsc-export`; the `zsc` CLI as the reference the bindings must equal.

The binaries come from `cargo build` (`make test` builds them before pytest runs); set ZSC_BIN_DIR
to use others."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("ZSC_BIN_DIR", ROOT / "target" / "debug"))
BASE = ROOT / "models" / "all-MiniLM-L6-v2"
ARCHS = ("bi_encoder", "poly_encoder", "colbert")


def binary(name: str) -> Path:
    path = BIN_DIR / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `cargo build -p zsc -p zsc-export` first (or set ZSC_BIN_DIR)")
    return path


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def export(args: list, out: Path) -> Path:
    done = run([binary("zsc-export"), *args, "--out", out, "--max-length", "64"])
    assert done.returncode == 0, done.stderr
    return out


def poly_checkpoint(dst: Path, codes: int = 4) -> Path:
    """A PolyEncoder checkpoint: the base's weights plus random codes (a trainer checkpoint's layout)."""
    from safetensors.numpy import load_file, save_file

    dst.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(BASE / name, dst / name)
    tensors = load_file(str(BASE / "model.safetensors"))
    rng = np.random.default_rng(7)
    tensors["poly.codes"] = (rng.standard_normal((codes, 384)) * 0.5).astype(np.float32)
    save_file(tensors, str(dst / "model.safetensors"))
    info = {
        "format_version": 1,
        "spec": {"model_type": "poly_encoder", "hidden_size": 384, "max_length": 64, "n_code_vectors": codes,
                 "embedding": {"pooling": "mean", "normalize": True}},
        "base_model": str(BASE), "data": "data/train.json", "split": {"train": 0.8, "val": 0.1, "test": 0.1},
        "seed": 7, "step": 1, "val_loss": None, "created_by": "python/tests/conftest.py",
    }
    (dst / "zsc_checkpoint.json").write_text(json.dumps(info))
    return dst


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> dict:
    if not (BASE / "model.safetensors").is_file():
        pytest.fail(f"{BASE} is missing: run `make setup`")
    tmp = tmp_path_factory.mktemp("bundles")
    return {
        "bi_encoder": export(["--checkpoint", BASE], tmp / "bi"),
        "poly_encoder": export(["--checkpoint", poly_checkpoint(tmp / "poly_ckpt")], tmp / "poly"),
        "colbert": export(["--checkpoint", BASE, "--model-type", "colbert"], tmp / "colbert"),
    }


@pytest.fixture(scope="session")
def classifiers(bundles) -> dict:
    import zsc

    return {arch: zsc.Classifier.from_pretrained(path) for arch, path in bundles.items()}


def zsc_cli(args: list, **kw) -> subprocess.CompletedProcess:
    return run([binary("zsc"), *args], **kw)
