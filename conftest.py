"""Root pytest configuration: shared fixtures live in Testing/fixtures/ (one module per kind).

Torch runs one thread per process in the tests: on this 2-core class of machine, tests that
start subprocesses (CLI, torchrun with 2 ranks) or run beside other work are several times
slower with oversubscribed threads. Set before any test module imports torch; subprocesses
inherit it.
"""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

pytest_plugins = [
    "Testing.fixtures.data",
    "Testing.fixtures.models",
    "Testing.fixtures.adversarial",
    "Testing.fixtures.diffusion",
]
