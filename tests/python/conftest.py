"""Shared fixtures of the huginn module's tests: the module, the CLI, the
models (the shipped task model and the reference's tiny golden fixture)."""
import json
import os
import struct
import subprocess

import numpy as np
import pytest

SOURCE = os.environ.get("HUGINN_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TASKS_MODEL = os.path.join(SOURCE, "models", "huginn-tasks")
TINY = os.path.join(SOURCE, "tests", "data", "golden", "tiny_f32")


@pytest.fixture(scope="session")
def huginn():
    import huginn as h

    return h


@pytest.fixture(scope="session")
def cli():
    exe = os.environ.get("HUGINN_BIN") or os.path.join(SOURCE, "build", "bin", "huginn")
    if not os.path.exists(exe):
        pytest.fail(f"the huginn CLI is not built: {exe}")

    def run(*args, check=True):
        p = subprocess.run([exe, "-t", "2", *map(str, args)], capture_output=True, text=True)
        if check and p.returncode != 0:
            raise AssertionError(f"huginn {' '.join(map(str, args))} failed: {p.stderr}")
        return p

    return run


@pytest.fixture(scope="session")
def tasks_model(huginn):
    return huginn.Model(TASKS_MODEL)


@pytest.fixture(scope="session")
def tiny(huginn):
    return huginn.Model(TINY)


def read_safetensors(path):
    """The tensors of a safetensors file (F32 only), as NumPy arrays."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", t
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(t["shape"])
    return out


def same_bits(a, b):
    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))
