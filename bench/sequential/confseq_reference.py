"""Reference values of the confidence sequence from the authors' package (``confseq`` 0.0.11).

``pip install confseq`` needs Boost headers to build its C++ part and its ``misc`` module uses
``np.float_`` (removed in numpy 2), so this script loads only the pure-Python ``predmix`` module from
the unpacked sdist (``pip download --no-deps confseq``; ``tar xzf``) and prints the numbers that
``tests/test_sequential.py::test_bound_matches_confseq`` pins. Usage::

    python bench/sequential/confseq_reference.py /path/to/confseq-0.0.11/src
"""

import sys
import types

import numpy as np


def reference_input() -> np.ndarray:
    """200 observations in [0, 1], deterministic without any RNG (the test builds the same array)."""
    i = np.arange(200)
    return ((i * 37) % 101) / 100.0 * (i % 3 != 0)


def main(src: str) -> None:
    np.float_ = np.float64  # confseq 0.0.11 predates numpy 2
    sys.modules.setdefault("multiprocess", types.ModuleType("multiprocess"))
    package = types.ModuleType("confseq")
    package.__path__ = [f"{src}/confseq"]  # skip the package __init__, which imports the C++ extension
    sys.modules["confseq"] = package
    from confseq.predmix import predmix_empbern_twosided_cs

    x = reference_input()
    for population in (None, 300):
        low, high = predmix_empbern_twosided_cs(x, alpha=0.05, running_intersection=True, N=population)
        print(f"population={population}")
        for t in (10, 50, 100, 200):
            print(f"  t={t}: ({low[t - 1]!r}, {high[t - 1]!r})")


if __name__ == "__main__":
    main(sys.argv[1])
