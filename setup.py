"""Ship the repository's ``tasks/`` folder inside the package as ``evalkit/_shipped_tasks``.

Everything else is in pyproject.toml. Editable installs read ``tasks/`` in place; a wheel or a
non-editable install gets a copy, so ``evalkit tasks`` and ``--tasks mmlu`` work from either.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithTasks(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        source = Path(__file__).parent / "tasks"
        target = Path(self.build_lib) / "evalkit" / "_shipped_tasks"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithTasks})
