"""The composite GitHub Action (``action.yml``) run locally: its shell steps, as GitHub would run them.

GitHub substitutes ``${{ ... }}`` and runs each ``run:`` with ``bash -eo pipefail``; this test does the
same with a predictions-file comparison (no model), a fake ``gh`` that keeps pull-request comments in a
JSON file, and ``GITHUB_OUTPUT`` / ``GITHUB_STEP_SUMMARY`` files. The ``uses:`` steps (setup-python,
cache, upload-artifact) belong to GitHub; the test checks what they are given.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.cli import make_voc_task, write_predictions

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
STEPS = ACTION["runs"]["steps"]

FAKE_GH = """\
#!{python}
# `gh api` for the action's comment step: comments live in $FAKE_GH_STATE (a JSON list).
import json, os, sys
state = os.environ["FAKE_GH_STATE"]
comments = json.load(open(state)) if os.path.exists(state) else []
args = sys.argv[1:]
assert args[0] == "api", args
method = args[args.index("-X") + 1] if "-X" in args else "GET"
if method == "GET":  # the step's --jq keeps the ids of comments starting with the marker
    marker = "<!-- evalkit-gate -->"
    print("\\n".join(str(c["id"]) for c in comments if c["body"].startswith(marker)))
    sys.exit(0)
body = open(next(a for a in args if a.startswith("body=@"))[6:]).read()
if method == "PATCH":
    cid = int(next(a for a in args if "/issues/comments/" in a).rsplit("/", 1)[1])
    next(c for c in comments if c["id"] == cid)["body"] = body
else:
    comments.append({{"id": 100 + len(comments), "body": body}})
json.dump(comments, open(state, "w"))
"""


def _step(name: str) -> dict:
    return next(step for step in STEPS if step.get("name") == name)


def _substitute(text: str, context: dict[str, str]) -> str:
    return re.sub(r"\$\{\{\s*([^}]+?)\s*\}\}", lambda m: context[m.group(1)], text)


def _run_step(name: str, context: dict[str, str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    step = _step(name)
    assert step["shell"] == "bash"
    step_env = {key: _substitute(str(value), context) for key, value in step.get("env", {}).items()}
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                          env={**env, **step_env}, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture()
def github(tmp_path):
    """A runner's environment: the repository checkout as the working folder, GitHub's files, a fake gh."""
    work = tmp_path / "repo"
    work.mkdir()
    task = make_voc_task(work / "tasks", n=8)
    base = write_predictions(work / "base.jsonl", task, n=8)
    tuned = write_predictions(work / "tuned.jsonl", task, n=8, outputs={str(i): "nonsense" for i in range(1, 9)})
    (work / "policy.yaml").write_text("baseline: base\ngates:\n  - metric: tiny.leaf_macro_f1\n    max_drop: 0.05\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH.format(python=sys.executable))
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    evalkit = bin_dir / "evalkit"  # the console script pip would install, for this checkout's code
    evalkit.write_text(f"#!/bin/sh\nexec {sys.executable} -m evalkit \"$@\"\n")
    evalkit.chmod(evalkit.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "GITHUB_OUTPUT": str(tmp_path / "output"), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
           "GITHUB_REPOSITORY": "me/project", "RUNNER_TEMP": str(tmp_path), "FAKE_GH_STATE": str(tmp_path / "gh.json")}
    context = {"inputs.checkpoints": f"base={base.name} tuned={tuned.name}", "inputs.tasks": "tasks/tiny.yaml",
               "inputs.policy": "policy.yaml", "inputs.out": "evalkit-report", "inputs.args": "--sample-seed 0",
               "inputs.github-token": "t", "inputs.store": "", "runner.temp": str(tmp_path), "github.event.pull_request.number": "7",
               "github.server_url": "https://github.com", "github.repository": "me/project", "github.run_id": "1"}
    return {"work": work, "env": env, "context": context, "tmp": tmp_path}


def _outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


@pytest.mark.slow
def test_the_actions_steps_gate_summarise_comment_once_and_fail_the_job(github):
    env, context = {**github["env"]}, dict(github["context"])
    work = github["work"]
    compare = _run_step("Compare and gate", context, env, work)
    assert compare.returncode == 0, compare.stderr  # the step itself passes: the report is uploaded first
    code = _outputs(github["tmp"] / "output")["exit-code"]
    assert code == "1", compare.stderr  # tuned's leaf macro F1 drops to 0: the gate fails
    assert (work / "evalkit-report" / "report.html").is_file()
    assert (github["tmp"] / "evalkit-store" / "results.sqlite").is_file()  # the folder the cache step keeps
    assert "### evalkit gate: ❌ FAIL" in (github["tmp"] / "summary.md").read_text()

    for _ in range(2):  # a second run updates the comment instead of adding one
        comment = _run_step("Comment on the pull request", context, env, work)
        assert comment.returncode == 0, comment.stderr
    comments = json.loads((github["tmp"] / "gh.json").read_text())
    assert len(comments) == 1 and comments[0]["body"].startswith("<!-- evalkit-gate -->")
    assert "FAIL" in comments[0]["body"] and "actions/runs/1" in comments[0]["body"]

    context["steps.compare.outputs.exit-code"] = code
    assert _run_step("Fail the job when a gate failed", context, env, work).returncode == 1


def test_the_action_installs_evalkit_not_the_users_project_and_uploads_the_report_folder():
    install = _step("Install evalkit")
    assert '"${PACKAGE:-$GITHUB_ACTION_PATH}"' in install["run"] and "-e ." not in install["run"]
    upload = next(step for step in STEPS if step.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and upload["with"]["path"] == "${{ inputs.out }}"
    comment = _step("Comment on the pull request")
    assert comment["if"].startswith("always()") and "pull_request" in comment["if"]
    # nothing offline is forced: mmlu and ifeval read the hub unless given local data
    assert "HF_HUB_OFFLINE" not in (ROOT / "action.yml").read_text()


def _install(tmp_path: Path, action_path: Path, package: str = "") -> tuple[subprocess.CompletedProcess, list[str]]:
    """The action's install step with a `python` that records its arguments instead of running pip."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    calls = tmp_path / "calls.txt"
    python = bin_dir / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    step = _step("Install evalkit")
    context = {"inputs.torch": "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu",
               "inputs.package": package}
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GITHUB_ACTION_PATH": str(action_path)}
    env.update({key: _substitute(str(value), context) for key, value in step["env"].items()})
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], env=env,
                          capture_output=True, text=True, timeout=60)
    return done, calls.read_text().splitlines() if calls.exists() else []


def test_the_action_installs_its_own_evalkit_folder_or_the_package_it_is_given(tmp_path):
    done, calls = _install(tmp_path / "checkout", ROOT)  # used as an evalkit checkout (submodule, own repository)
    assert done.returncode == 0, done.stderr
    assert calls[-1] == f"-m pip install {ROOT}" and "whl/cpu" in calls[-2]
    wheel = "tools/evalkit-0.1.0-py3-none-any.whl"
    alone = tmp_path / "alone"  # action.yml copied alone into the user's repository
    alone.mkdir()
    (alone / "action.yml").write_text((ROOT / "action.yml").read_text())
    done, calls = _install(tmp_path / "with_package", alone, package=wheel)
    assert done.returncode == 0 and calls[-1] == f"-m pip install {wheel}", done.stderr
    done, calls = _install(tmp_path / "without_package", alone)  # nothing to install: one line, before pip runs
    assert done.returncode == 2 and calls == [], done.stdout
    assert done.stdout.startswith("::error::") and len(done.stdout.splitlines()) == 1 and "package" in done.stdout


def test_the_example_workflow_uses_the_action_with_a_policy_of_its_own_repository():
    text = (ROOT / "examples" / "github-actions" / "evalkit-gate.yml").read_text()
    workflow = yaml.safe_load(text)
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    gate = next(step for step in steps if "checkpoints" in step.get("with", {}))
    # no address that does not exist: the action is the user's own copy of evalkit, checked out with the repository
    assert gate["uses"] == "./tools/evalkit" and "OWNER" not in text
    checkout = next(step for step in steps if step.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["submodules"] is True
    assert not gate["with"]["policy"].startswith("examples/")  # the user's repository has no examples/ folder
    assert "pull-requests" in workflow["permissions"]
    envs = [workflow.get("env", {}), *(job.get("env", {}) for job in workflow["jobs"].values())]
    assert not any("HF_HUB_OFFLINE" in env for env in envs)  # mmlu and ifeval read the hub
    assert "pip install -e ." not in (ROOT / "examples" / "github-actions" / "evalkit-gate.yml").read_text()
