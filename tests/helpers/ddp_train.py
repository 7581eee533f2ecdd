"""A tiny ``transformers.Trainer`` run with ``EvalkitCallback``, launched under ``torchrun`` by
``tests/test_trainer_callback_ddp.py``: ``python -m torch.distributed.run --standalone --nproc_per_node 2
tests/helpers/ddp_train.py MODEL_DIR MMLU_DIR OUT``. Each process writes ``OUT/rank{RANK}.json`` with what
it saw (the step training ended at, the callback's results and stop reason)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(model_dir: str, mmlu_dir: str, out: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from evalkit.api import resolve
    from evalkit.integrations.transformers import EvalkitCallback

    out_dir = Path(out)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = tokenizer("Comment: the parcel came late\nLabel: Delivery > Late delivery", truncation=True,
                    max_length=24, padding="max_length")["input_ids"]
    data = [{"input_ids": ids, "attention_mask": [1] * len(ids), "labels": ids}] * 16
    tasks = resolve(["voc_sample", "mmlu"], {"voc_sample": {"max_gen_toks": 4, "n_resamples": 20},
                                             "mmlu": {"data": mmlu_dir}})
    # A gate nothing can pass: the first evaluated save (step 2 of 6) must stop training on every process.
    policy = {"gates": [{"metric": "mmlu.acc", "min": 1.01, "name": "impossible"}]}
    callback = EvalkitCallback(tasks, policy=policy, limit=2, out=out_dir / "report", store=out_dir / "store.sqlite",
                               batch_size=4)
    args = TrainingArguments(output_dir=str(out_dir / "run"), max_steps=6, save_steps=2, per_device_train_batch_size=2,
                             learning_rate=5e-3, logging_steps=1, report_to=[], disable_tqdm=True, use_cpu=True,
                             ddp_backend="gloo", save_only_model=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, callbacks=[callback])
    trainer.train()
    seen = {"world_size": args.world_size, "global_step": trainer.state.global_step,
            "results": [r.checkpoint.label for r in callback.results], "stop_reason": callback.stop_reason,
            "logged_steps": [e["step"] for e in trainer.state.log_history if "eval_evalkit/mmlu.acc" in e]}
    (out_dir / f"rank{os.environ['RANK']}.json").write_text(json.dumps(seen))
    # Rank 0 sometimes aborted after all its work was done, in destroy_process_group or interpreter teardown
    # ("terminate called without an active exception", SIGABRT): twice in five fresh-clone suite runs (once with a
    # destroy_process_group here), never alone or beside CPU burners. Not understood yet (the closing note of
    # 2026-12-07 says so); the results above are written, so the process leaves without any teardown and the test
    # checks what the ranks saw.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:4])
