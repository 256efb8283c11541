#!/usr/bin/env python3
"""Runs the huginn Python module's pytest suite (ctest: python.pytest).

usage: run.py BUILD_PYTHON_DIR HUGINN_BIN SOURCE_DIR [pytest args...]

Exits 77 (ctest: skipped) with a clear message when NumPy or pytest are
missing for this interpreter."""
import os
import sys


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    pydir, huginn_bin, source = sys.argv[1:4]
    missing = []
    for mod, pkg in (("numpy", "python3-numpy"), ("pytest", "python3-pytest")):
        try:
            __import__(mod)
        except ImportError:
            missing.append(pkg)
    if missing:
        print(f"SKIPPED: {sys.executable} lacks {', '.join(missing)}; run as root: apt-get install -y {' '.join(missing)}")
        return 77
    import pytest

    os.environ["PYTHONPATH"] = pydir + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.environ["HUGINN_BIN"] = huginn_bin
    os.environ["HUGINN_SOURCE_DIR"] = source
    sys.path.insert(0, pydir)
    here = os.path.dirname(os.path.abspath(__file__))
    return pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", here, here] + sys.argv[4:])


if __name__ == "__main__":
    sys.exit(main())
