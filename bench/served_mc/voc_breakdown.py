"""Where a served constrained-VOC run's time goes: the same requests in other formats, on one vLLM server.

Needs a running ``vllm serve`` (e.g. started as ``run.py`` starts it) and the request bodies of one evalkit
run, captured with ``--capture`` (evalkit's own ``eval`` command, in process, every POST body written out):

    python bench/served_mc/voc_breakdown.py --port PORT --capture bodies.json -- \\
        --store /tmp/s.sqlite eval http://127.0.0.1:PORT/v1#tiny --tasks voc_cfpb --model-args tokenizer=DIR,... ...
    python bench/served_mc/voc_breakdown.py --port PORT --replay bodies.json --variant echo --concurrency 8 \\
        --per-request 1 --pids API_PID ENGINE_PID WORKER_PID

``--replay`` sends the captured bodies again, turned into ``--variant``: ``echo`` (lm-eval's ``echo=true,
logprobs=1``), ``plp1``/``plp0`` (vLLM's own ``prompt_logprobs=1``/``0``, no echo), ``prefill`` (no prompt
log-probabilities at all, a fresh ``cache_salt`` per request so nothing is read from the prefix cache: the
engine's prefill alone) or ``asis``; ``--per-request N`` puts N prompts in one request's ``prompt`` list.
It prints one JSON row: wall, the client's CPU seconds, each server process's CPU seconds (``/proc``, the
``--pids`` given: vLLM's API server, EngineCore and worker), and the reply bytes. Figures in README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import runpy
import sys
import time
import uuid


def capture(out: str, argv: list[str]) -> None:
    """Run ``python -m evalkit ARGV`` in this process, writing every JSON POST body and reply size to ``out``."""
    import aiohttp

    records: list[dict] = []
    original = aiohttp.ClientSession._request

    async def _request(self, method, url, **kwargs):
        response = await original(self, method, url, **kwargs)
        if "json" in kwargs:
            records.append({"payload": kwargs["json"], "reply_bytes": len(await response.read())})
        return response

    aiohttp.ClientSession._request = _request
    sys.argv = ["evalkit", *argv]
    started = time.perf_counter()
    try:
        runpy.run_module("evalkit", run_name="__main__")
    except SystemExit:
        pass
    finally:
        print(json.dumps({"wall": round(time.perf_counter() - started, 2), "cpu": round(time.process_time(), 2)}))
        with open(out, "w") as file:
            json.dump(records, file)


def variant(body: dict, name: str) -> dict:
    """A captured log-likelihood body in another format (see the module docstring)."""
    body = {k: v for k, v in body.items() if k not in ("logprobs", "prompt_logprobs", "return_token_ids")}
    if name == "echo":
        return {**body, "echo": True, "logprobs": 1}
    if name == "prefill":
        return {**body, "echo": False, "cache_salt": uuid.uuid4().hex}
    return {**body, "echo": False, "prompt_logprobs": int(name[3:]), "return_token_ids": True}


def grouped(bodies: list[dict], per: int) -> list[dict]:
    out = []
    for start in range(0, len(bodies), per):
        group = bodies[start : start + per]
        out.append({**group[0], "prompt": [b["prompt"] for b in group]} if per > 1 else group[0])
    return out


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        out[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return out


async def send_all(url: str, bodies: list[dict], concurrency: int) -> list[int]:
    import aiohttp

    semaphore, sizes = asyncio.Semaphore(concurrency), []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one(body):
            async with semaphore:
                for _ in range(5):  # the server closes idle keep-alive connections: try again
                    try:
                        async with session.post(url, json=body) as response:
                            raw = await response.read()
                            assert response.status == 200, raw[:300]
                            json.loads(raw)
                            sizes.append(len(raw))
                            return
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.2)

        await asyncio.gather(*(one(body) for body in bodies))
    return sizes


def replay(args) -> None:
    # the evaluation requests (lm-eval's payloads carry a seed), not evalkit's probes
    bodies = [r["payload"] for r in json.load(open(args.replay)) if "seed" in r["payload"]]
    bodies = [b if args.variant == "asis" else variant(b, args.variant) for b in bodies]
    requests = grouped(bodies, args.per_request) if args.variant != "asis" else bodies
    before, load, started, client = cpu_seconds(args.pids), os.getloadavg()[0], time.perf_counter(), time.process_time()
    sizes = asyncio.run(send_all(f"http://127.0.0.1:{args.port}/v1/completions", requests, args.concurrency))
    wall, after = time.perf_counter() - started, cpu_seconds(args.pids)
    print(json.dumps({
        "variant": args.variant, "concurrency": args.concurrency, "per_request": args.per_request,
        "requests": len(sizes), "load": round(load, 2), "wall": round(wall, 2),
        "client_cpu": round(time.process_time() - client, 2),
        "server_cpu": {pid: round(after[pid] - before[pid], 2) for pid in after}, "reply_MB": round(sum(sizes) / 1e6, 2),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--capture", help="run evalkit (arguments after --) and write its request bodies here")
    parser.add_argument("--replay", help="request bodies written by --capture")
    parser.add_argument("--variant", default="asis", choices=["asis", "echo", "plp1", "plp0", "prefill"])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--per-request", type=int, default=1)
    parser.add_argument("--pids", type=int, nargs="*", default=[])
    args, rest = parser.parse_known_args()
    if args.capture:
        capture(args.capture, [a for a in rest if a != "--"])
    else:
        replay(args)


if __name__ == "__main__":
    main()
