"""EvalkitCallback's cost per save over a long run: the demo's base fine-tuned on its domain data with
``transformers.Trainer``, a save every ``--save-steps`` steps, the callback evaluating both demo tasks
at each save. Two runs side by side in one process, the same training: ``report_every=1`` (the report
folder rewritten at every save, as before issue 30) and the default ``report_every=10``.

Writes ``runs/<name>.json`` with, per save, the callback's own wall time (evaluation, comparison, logging,
store, report) split into its parts, and the training time between saves; ``--table`` prints the README's
table from the recorded runs.

    python bench/callback/run.py --saves 30 --save-steps 10 --limit 100
    python bench/callback/run.py --table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _dataset(tokenizer, examples, max_length: int = 96):
    rows = []
    for example in examples:
        ids = tokenizer(example.prompt + example.completion, truncation=True, max_length=max_length)["input_ids"]
        rows.append({"input_ids": ids, "labels": list(ids)})
    return rows


class _Timed:
    """Wall time of each call of the callback's methods, per save."""

    def __init__(self, callback):
        self.callback, self.saves = callback, []
        for name in ("_evaluate_model", "_compare_step", "_write_report", "_record_saved_folder"):
            original = getattr(callback, name)
            setattr(callback, name, self._wrap(name, original))
        original_save = callback.on_save

        def on_save(*args, **kwargs):
            self.saves.append({"started": time.perf_counter()})
            result = original_save(*args, **kwargs)
            self.saves[-1]["total"] = time.perf_counter() - self.saves[-1].pop("started")
            return result

        callback.on_save = on_save

    def _wrap(self, name, original):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if self.saves and "total" not in self.saves[-1]:
                    self.saves[-1][name] = self.saves[-1].get(name, 0.0) + time.perf_counter() - started
        return timed


def run(report_every: int, args) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from evalkit.demo.checkpoints import ensure_checkpoints, load_domain_data
    from evalkit.integrations.transformers import EvalkitCallback

    torch.set_num_threads(1)
    base = ensure_checkpoints(log=lambda m: print(m, file=sys.stderr))["base"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    data = _dataset(tokenizer, load_domain_data().train)
    work = Path(tempfile.mkdtemp(prefix="evalkit-bench-callback-"))
    callback = EvalkitCallback(["demo_voc", "demo_general"], limit=args.limit, report_every=report_every,
                               store=work / "store.sqlite", out=work / "report", batch_size=32)
    timed = _Timed(callback)
    training = TrainingArguments(output_dir=str(work / "run"), max_steps=args.saves * args.save_steps,
                                 save_steps=args.save_steps, per_device_train_batch_size=32, learning_rate=2.5e-3,
                                 logging_steps=args.save_steps, report_to=[], disable_tqdm=True, use_cpu=True,
                                 save_only_model=True, seed=0, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=training, train_dataset=data, processing_class=tokenizer,
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True), callbacks=[callback])
    started = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - started
    callback_seconds = sum(s["total"] for s in timed.saves)
    return {"report_every": report_every, "saves": timed.saves, "train_wall": total,
            "callback_wall": callback_seconds, "callback_share": callback_seconds / total}


def _machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "load_before": os.getloadavg()}


def table(runs: list[dict]) -> str:
    lines = ["| report_every | callback s at save 1 | save 10 | save 30 | median over saves 21-30 | "
             "callback share of training | report writes |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in runs:
        saves = entry["saves"]
        at = lambda i: f"{saves[i - 1]['total']:.2f}" if len(saves) >= i else "–"  # noqa: E731
        tail = statistics.median(s["total"] for s in saves[20:30]) if len(saves) >= 30 else float("nan")
        writes = sum("_write_report" in s for s in saves)
        lines.append(f"| {entry['report_every']} | {at(1)} | {at(10)} | {at(30)} | {tail:.2f} | "
                     f"{100 * entry['callback_share']:.0f}% | {writes} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=30)
    parser.add_argument("--save-steps", type=int, default=10)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--name", default="run")
    parser.add_argument("--table", action="store_true", help="print the table of the recorded runs")
    args = parser.parse_args()
    if args.table:
        for path in sorted((HERE / "runs").glob("*.json")):
            recorded = json.loads(path.read_text())
            print(f"{path.name} (load before: {recorded['machine']['load_before']})")
            print(table(recorded["runs"]))
        return
    machine = _machine()
    runs = [run(every, args) for every in (1, 10)]
    machine["load_after"] = os.getloadavg()
    (HERE / "runs").mkdir(exist_ok=True)
    out = HERE / "runs" / f"{args.name}.json"
    out.write_text(json.dumps({"machine": machine, "args": vars(args), "runs": runs}, indent=1) + "\n")
    print(table(runs))


if __name__ == "__main__":
    main()
