"""Where the test suite's time goes: CPU and wall seconds per test, per module and per xdist worker.

As a pytest plugin it appends one JSON line per test to ``$CPU_PER_TEST_DIR/cpu-<pid>.jsonl`` (one file per
worker): the test's own CPU (user + sys of the worker), the CPU of child processes it waited for, and its wall
time. Servers started by session fixtures are children nobody waits for until the session ends, so their CPU
shows up in the last test of their worker::

    rm -rf /tmp/cpu && CPU_PER_TEST_DIR=/tmp/cpu PYTHONPATH=bench/suite python -m pytest -q -p cpu_per_test
    python bench/suite/cpu_per_test.py /tmp/cpu          # the summary

The suite runs in two workers that take whole modules (``--dist loadscope``), so its wall time is about the
larger of the two workers' sums plus collection: see ``bench/suite/README.md``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest


def _cpu() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    folder = os.environ.get("CPU_PER_TEST_DIR")
    if not folder:
        yield
        return
    own, children, started = *_cpu(), time.monotonic()
    yield
    own_after, children_after = _cpu()
    line = {"id": item.nodeid, "self": own_after - own, "children": children_after - children,
            "wall": time.monotonic() - started}
    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / f"cpu-{os.getpid()}.jsonl", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


def summary(folder: Path, top: int = 15) -> str:
    """Per worker: tests, wall and CPU sums and the modules in the order it ran them; then the costliest modules."""
    lines, modules = [], defaultdict(lambda: [0.0, 0.0])
    for path in sorted(folder.glob("cpu-*.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        if not rows:
            continue
        order: list[str] = []
        for row in rows:
            module = row["id"].split("::", 1)[0]
            modules[module][0] += row["self"] + row["children"]
            modules[module][1] += row["wall"]
            if not order or order[-1] != module:
                order.append(module)
        wall, cpu = sum(r["wall"] for r in rows), sum(r["self"] + r["children"] for r in rows)
        lines.append(f"worker {path.stem}: {len(rows)} tests, {wall:.0f} s wall, {cpu:.0f} CPU s; first modules: "
                     + ", ".join(Path(m).stem for m in order[:4]))
    lines.append(f"{'module':50s} {'CPU s':>7s} {'wall s':>7s}")
    for module, (cpu, wall) in sorted(modules.items(), key=lambda kv: -kv[1][0])[:top]:
        lines.append(f"{module:50s} {cpu:7.1f} {wall:7.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(Path(sys.argv[1])))
