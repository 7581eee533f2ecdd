"""Hardening (issue 14): nothing escapes --out, bad input is exit 2, the same inputs give the same bytes.

One test (or a few) per class of defect; the CLI runs in-process through ``evalkit.cli.main`` on tiny
VOC tasks answered by predictions files, so no model is needed and each test takes well under a second.
The property-based fuzz tests are in ``tests/test_hardening_fuzz.py``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import pytest

from evalkit._io import MANIFEST_NAME, OutputFolder, dump_json, parse_yaml, safe_file_name
from evalkit.errors import UsageError
from tests.helpers.cli import make_voc_task, run_cli, write_predictions
from tests.helpers.plugins import install_plugin


# ------------------------------------------------------------------ 1. nothing leaves its folder

@pytest.mark.parametrize("label", ["../../../../tmp/x", "/abs/dir", "org/name", "..", ".", "", "a\\b", "CON",
                                   "x\x00y", "\N{RIGHT-TO-LEFT OVERRIDE}gpj.exe", "-rf", ".hidden", "a" * 300])
def test_any_label_becomes_a_file_inside_the_folder(tmp_path, label):
    folder = OutputFolder(tmp_path / "out")
    name = safe_file_name(label, ".json")
    path = folder.write_text("results", name, text="{}")
    assert path.parent == tmp_path / "out" / "results" and path.is_file()
    assert len(name) < 120


def test_distinct_labels_never_share_a_file():
    labels = ["a/b", "a_b", "a b", "a\\b", "A/B"]
    assert len({safe_file_name(label, ".json") for label in labels}) == len(labels)


@pytest.mark.parametrize("part", ["../x", "..", "/etc/passwd", "a/b", "", "x\ny"])
def test_the_guard_refuses_names_that_are_not_plain(tmp_path, part):
    with pytest.raises(UsageError, match="not a plain file name"):
        OutputFolder(tmp_path).write_text(part, text="x")
    assert list(tmp_path.iterdir()) == []


def test_the_guard_refuses_a_symlinked_subfolder_pointing_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results").symlink_to(outside)
    with pytest.raises(UsageError, match="resolves outside"):
        OutputFolder(tmp_path / "out").write_text("results", "base.json", text="{}")
    assert list(outside.iterdir()) == []


def test_compare_writes_a_server_style_label_inside_out(tmp_path, monkeypatch):
    """A label with '/' and '..' (as a server spec's '#MODEL' gives) ends up as a file in OUT/results."""
    from evalkit.comparison import Comparison
    from evalkit.records import CheckpointInfo, EvalResult

    def result(label):
        info = CheckpointInfo(label=label, spec=f"http://h/v1#{label}", kind="server", fingerprint="f" * 64)
        return EvalResult(checkpoint=info, versions={}, tasks={}, created="2026-01-01")

    comparison = Comparison({"schema_version": 1, "kind": "evalkit.comparison", "checkpoints": [], "tasks": [],
                             "metrics": []}, results=[result("../../../../tmp/evil"), result("/abs/dir")])
    written = comparison.write(tmp_path / "out")
    results = [p for p in written if p.parent.name == "results"]
    assert len(results) == 2 and all(p.parent == tmp_path / "out" / "results" for p in results)
    assert json.loads(results[0].read_text())["checkpoint"]["label"] == "../../../../tmp/evil"
    assert sorted(p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()) == ["out"] * 7


# ------------------------------------------------------------------ 2. one canonical sample order

def _results_without_volatile(path: Path) -> dict:
    """results.json without its documented volatile fields: ``created`` and per-task ``timing``."""
    data = json.loads(path.read_text())
    data.pop("created")
    for task in data["tasks"].values():
        task.pop("timing")
    return data


def test_fresh_resumed_and_store_answered_runs_write_identical_results(tmp_path, monkeypatch):
    task = make_voc_task(tmp_path, n=14)  # ids 1..14: text order (1, 10, 11, ...) differs from file order
    preds = write_predictions(tmp_path / "p.jsonl", task, n=14)
    store = tmp_path / "store.sqlite"
    assert run_cli(["--store", str(store), "eval", str(preds), "-t", str(task), "--out", str(tmp_path / "fresh")])[0] == 0
    assert run_cli(["--store", str(store), "eval", str(preds), "-t", str(task), "--out", str(tmp_path / "stored")])[0] == 0
    # Resumed: the run is unfinished and half its samples are stored.
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE runs SET status='running', result=NULL")
        conn.execute("DELETE FROM samples WHERE CAST(sample_id AS INTEGER) % 2 = 0")
    assert run_cli(["--store", str(store), "eval", str(preds), "-t", str(task), "--out", str(tmp_path / "resumed")])[0] == 0
    fresh, stored, resumed = (_results_without_volatile(tmp_path / d / "results.json") for d in ("fresh", "stored", "resumed"))
    ids = [s["sample_id"] for s in fresh["tasks"]["tiny"]["samples"]]
    assert ids == [str(i) for i in range(1, 15)]  # natural order: 2 before 10
    assert fresh == stored == resumed
    assert dump_json(fresh) == dump_json(stored) == dump_json(resumed)


# ------------------------------------------------------------------ 4. outputs checked before the work

@pytest.fixture()
def voc_setup(tmp_path):
    task = make_voc_task(tmp_path, n=6)
    preds = write_predictions(tmp_path / "p.jsonl", task, n=6)
    return task, preds


def test_results_json_that_is_a_folder_is_exit_2_before_the_work(tmp_path, voc_setup):
    task, preds = voc_setup
    (tmp_path / "out" / "results.json").mkdir(parents=True)
    code, _, err = run_cli(["--store", str(tmp_path / "s.sqlite"), "eval", str(preds), "-t", str(task), "--out", str(tmp_path / "out")])
    assert code == 2 and "results.json is a folder" in err and "Traceback" not in err
    assert not (tmp_path / "s.sqlite").exists()  # refused before the store was even opened


def test_out_under_a_regular_file_is_exit_2(tmp_path, voc_setup):
    task, preds = voc_setup
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(["eval", str(preds), "-t", str(task), "--out", str(tmp_path / "file" / "out")])
    assert code == 2 and "cannot write there" in err


def test_unwritable_out_is_exit_2_before_the_work(tmp_path, voc_setup, monkeypatch):
    """A read-only --out (simulated: tests run as root, which ignores permission bits)."""
    task, preds = voc_setup
    import evalkit._io as io

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(io.tempfile, "mkstemp", refuse)
    code, _, err = run_cli(["--store", str(tmp_path / "s.sqlite"), "eval", str(preds), "-t", str(task),
                            "--out", str(tmp_path / "ro")])
    assert code == 2 and "Permission denied" in err and str(tmp_path / "ro") in err
    assert not (tmp_path / "s.sqlite").exists() and not (tmp_path / "ro").exists()


def test_store_under_a_regular_file_is_exit_2(tmp_path, voc_setup):
    task, preds = voc_setup
    (tmp_path / "file").write_text("x")
    code, _, err = run_cli(["--store", str(tmp_path / "file" / "s.sqlite"), "eval", str(preds), "-t", str(task)])
    assert code == 2 and "cannot create the result store" in err


def test_compare_checks_every_output_before_the_work(tmp_path, voc_setup):
    task, preds = voc_setup
    out = tmp_path / "out"
    (out / "results" / "b.json").mkdir(parents=True)
    code, _, err = run_cli(["--store", str(tmp_path / "s.sqlite"), "compare", f"a={preds}", f"b={preds}", "-t", str(task),
                            "--out", str(out)])
    assert code == 2 and "b.json is a folder" in err
    assert not (tmp_path / "s.sqlite").exists()


# ------------------------------------------------------------------ 13. a complete set has a manifest

def test_compare_writes_a_manifest_last_listing_every_output(tmp_path, voc_setup):
    task, preds = voc_setup
    out = tmp_path / "out"
    code, _, err = run_cli(["compare", f"a={preds}", f"b={preds}", "-t", str(task), "--out", str(out)])
    assert code == 0, err
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["complete"] is True
    assert sorted(manifest["files"]) == ["comparison.json", "metrics.csv", "report.html", "report.md",
                                         "results/a.json", "results/b.json"]
    newest = max(p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    assert (out / MANIFEST_NAME).stat().st_mtime_ns >= newest


def test_an_interrupted_write_leaves_no_manifest(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with OutputFolder(out) as folder:
        folder.write_text("a.txt", text="1")
    assert (out / MANIFEST_NAME).is_file()
    with pytest.raises(KeyboardInterrupt):
        with OutputFolder(out) as folder:
            folder.write_text("a.txt", text="2")
            raise KeyboardInterrupt  # killed between two outputs
    assert not (out / MANIFEST_NAME).exists()


def test_gate_beside_a_comparison_keeps_the_reports_in_the_manifest(tmp_path, voc_setup):
    task, preds = voc_setup
    out = tmp_path / "out"
    assert run_cli(["compare", f"a={preds}", f"b={preds}", "-t", str(task), "--out", str(out)])[0] == 0
    policy = tmp_path / "policy.yaml"
    policy.write_text("gates:\n  - metric: tiny.path_accuracy\n    max_drop: 0.5\n")
    assert run_cli(["gate", str(out / "comparison.json"), "--policy", str(policy)])[0] == 0
    files = json.loads((out / MANIFEST_NAME).read_text())["files"]
    assert {"report.html", "junit.xml", "verdict.json", "results/a.json"} <= set(files)


# ------------------------------------------------------------------ 5. text that cannot be encoded

def test_lone_surrogates_are_written_losslessly(tmp_path):
    text = dump_json({"output": "x\ud800y\udfff"})
    assert json.loads(text) == {"output": "x\ud800y\udfff"}
    OutputFolder(tmp_path).write_text("r.json", text=text)
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8")) == {"output": "x\ud800y\udfff"}


def test_a_prediction_with_a_lone_surrogate_is_stored_and_written(tmp_path):
    task = make_voc_task(tmp_path, n=4)
    preds = write_predictions(tmp_path / "p.jsonl", task, n=4, outputs={"2": "x\ud800y"})
    store = str(tmp_path / "s.sqlite")
    for run in ("first", "second"):  # the second is answered from the store
        code, _, err = run_cli(["--store", store, "eval", str(preds), "-t", str(task), "--out", str(tmp_path / run)])
        assert code == 0, err
        samples = json.loads((tmp_path / run / "results.json").read_text())["tasks"]["tiny"]["samples"]
        assert [s["extra"]["raw_output"] for s in samples if s["sample_id"] == "2"] == ["x\ud800y"]


# ------------------------------------------------------------------ 8. Markdown and CSV injection

HOSTILE = "![x](https://e.vil/p.png) [click](https://e.vil) <img src=x onerror=alert(1)> @org/team | `rm` $x$ #1"


def test_step_summary_and_report_md_use_the_one_escaper(tmp_path, monkeypatch):
    from evalkit.gate import evaluate_policy, parse_policy, verdict_markdown
    from evalkit.report.markdown import md_escape

    comparison = {"schema_version": 1, "kind": "evalkit.comparison", "baseline": "base",
                  "checkpoints": [{"label": "base"}, {"label": HOSTILE}],
                  "metrics": [{"task": "t", "metric": "acc", "checkpoint": c, "value": 0.5, "baseline_value": 0.5,
                               "delta": 0.0, "p_value": None, "higher_is_better": True} for c in ("base", HOSTILE)]}
    verdict = evaluate_policy(parse_policy({"gates": [{"metric": "t.acc", "max_drop": 0.1}]}), comparison)
    text = verdict_markdown(verdict)
    assert md_escape(HOSTILE) in text
    for raw in ("<img", "https://", "@org", "`rm`", "$x$"):
        assert raw not in text
    assert not re.search(r"(?<!\\)\]\(", text)  # no link or image syntax left


def test_csv_cells_that_look_like_formulas_are_neutralised():
    from evalkit.report import metrics_csv

    rows = [{"task": "t", "metric": "acc", "checkpoint": start + "HYPERLINK(\"https://e.vil\")", "value": -0.5}
            for start in ("=", "+", "-", "@", "\t", "\r")]
    text = metrics_csv({"metrics": rows})
    import csv
    import io

    cells = [row["checkpoint"] for row in csv.DictReader(io.StringIO(text))]
    assert all(cell.startswith("'") for cell in cells)
    assert [row["value"] for row in csv.DictReader(io.StringIO(text))] == ["-0.5"] * 6  # numbers stay numbers


# ------------------------------------------------------------------ 9. one YAML loader, duplicate keys

def test_duplicate_gate_key_names_both_lines(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("gates:\n  - metric: mmlu.acc\n    max_drop: 0.02\n    max_drop: 0.5\n")
    code, _, err = run_cli(["gate", str(tmp_path / "c.json"), "--policy", str(policy)])
    assert code == 2 and "line 4: duplicate key 'max_drop' (first on line 3)" in err


def test_duplicate_key_in_a_task_file(tmp_path):
    task = tmp_path / "t.yaml"
    task.write_text("name: a\nevaluator: voc\nname: b\n")
    code, _, err = run_cli(["eval", "x.jsonl", "-t", str(task)])
    assert code == 2 and "t.yaml line 3: duplicate key 'name' (first on line 1)" in err


def test_yaml_alias_bomb_is_refused_quickly():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [{', '.join('*' + prev for _ in range(10))}]")
    with pytest.raises(UsageError, match="expands to more than"):
        parse_yaml("\n".join(lines), source="bomb.yaml")


def test_every_yaml_read_goes_through_the_one_loader():
    """No module but evalkit/_io.py parses YAML itself (a second loader would lack the duplicate-key check)."""
    root = Path(__file__).resolve().parents[1] / "evalkit"
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if p.name != "_io.py"
                 and any(call in p.read_text() for call in ("yaml.safe_load(", "yaml.load(", "yaml.full_load("))]
    assert offenders == []


# ------------------------------------------------------------------ 3. disposable caches, 12. stale hashes

@pytest.fixture()
def fresh_hash_cache(tmp_path, monkeypatch):
    from evalkit.checkpoints.fingerprint import _HashCache

    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(_HashCache, "_disabled", False)
    return tmp_path / "cache" / _HashCache.FILE


def test_a_corrupt_hash_cache_is_recreated_with_one_warning(tmp_path, fresh_hash_cache, capsys):
    from evalkit.checkpoints.fingerprint import file_sha256

    fresh_hash_cache.parent.mkdir(parents=True)
    fresh_hash_cache.write_bytes(os.urandom(4096))
    data = tmp_path / "w.bin"
    data.write_bytes(b"weights")
    assert file_sha256(data) == file_sha256(data)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and str(fresh_hash_cache) in warnings[0] and "recreating" in warnings[0]
    with sqlite3.connect(fresh_hash_cache) as conn:  # usable again, with the entry in it
        assert conn.execute("SELECT COUNT(*) FROM file_hashes").fetchone()[0] == 1


def test_a_corrupt_hash_cache_does_not_fail_an_eval(tmp_path, fresh_hash_cache, voc_setup):
    task, preds = voc_setup
    fresh_hash_cache.parent.mkdir(parents=True)
    fresh_hash_cache.write_bytes(b"\x00garbage" * 300)
    code, _, err = run_cli(["--store", str(tmp_path / "s.sqlite"), "eval", str(preds), "-t", str(task)])
    assert code == 0, err
    assert "recreating it" in err


def test_an_unusable_cache_folder_hashes_without_a_cache(tmp_path, monkeypatch, capsys):
    from evalkit.checkpoints.fingerprint import _HashCache, file_sha256

    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "file" / "cache"))  # under a regular file
    monkeypatch.setattr(_HashCache, "_disabled", False)
    data = tmp_path / "w.bin"
    data.write_bytes(b"weights")
    import hashlib

    assert file_sha256(data) == hashlib.sha256(b"weights").hexdigest()
    assert "hashing without a cache" in capsys.readouterr().err


def test_a_rewrite_with_the_same_size_and_mtime_is_hashed_again(tmp_path, fresh_hash_cache):
    from evalkit.checkpoints.fingerprint import file_sha256

    data = tmp_path / "w.bin"
    data.write_bytes(b"AAAA")
    stat = data.stat()
    first = file_sha256(data)
    with open(data, "r+b") as handle:  # in place: same inode, same size
        handle.write(b"BBBB")
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the old mtime restored
    assert data.stat().st_size == stat.st_size and data.stat().st_mtime_ns == stat.st_mtime_ns
    assert file_sha256(data) != first


def test_a_predictions_file_rewritten_with_the_same_size_and_mtime_is_evaluated_again(tmp_path, fresh_hash_cache):
    task = make_voc_task(tmp_path, n=4)
    preds = write_predictions(tmp_path / "p.jsonl", task, n=4, outputs={"1": "A > x"})
    stat = preds.stat()
    store = str(tmp_path / "s.sqlite")
    assert run_cli(["--store", store, "eval", str(preds), "-t", str(task), "--out", str(tmp_path / "a")])[0] == 0
    preds.write_text(preds.read_text().replace('"A > x"', '"A > y"'))  # same length
    os.utime(preds, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert run_cli(["--store", store, "eval", str(preds), "-t", str(task), "--out", str(tmp_path / "b")])[0] == 0
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in "ab")
    assert a["checkpoint"]["fingerprint"] != b["checkpoint"]["fingerprint"]
    assert [s["extra"]["raw_output"] for s in b["tasks"]["tiny"]["samples"]][0] == "A > y"


# ------------------------------------------------------------------ 7. secrets never printed or written

class _EchoingServer:
    """An OpenAI-style stub whose every POST fails with a body that echoes the request headers."""

    def __init__(self, status: int = 400):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, payload):
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._send(status, {"error": {"message": "bad request", "headers": dict(self.headers)}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A client that gives up mid-answer makes socketserver print a traceback to this process's stderr,
        # which the test reads as evalkit's: the stub stays quiet instead.
        self.server.handle_error = lambda request, address: None
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("status", [400, 500])
def test_a_server_echoing_the_key_does_not_leak_it(tmp_path, monkeypatch, status):
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    task = make_voc_task(tmp_path, n=2)
    with _EchoingServer(status) as url:
        code, out, err = run_cli(["--store", str(tmp_path / "s.sqlite"), "eval", f"{url}#m", "-t", str(task),
                                  "--max-retries", "0", "--out", str(tmp_path / "out")])
    assert code in (2, 4) and "Traceback" not in err
    assert "bad request" in err  # the server's answer is still shown ...
    assert secret not in out + err and '"Authorization": "Bearer ***"' in err  # ... with the key redacted
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_redact_covers_header_forms():
    from evalkit.errors import redact

    for text, secret in [('Authorization: Bearer abc.def-123', "abc.def-123"),
                         ('"authorization": "Basic dXNlcjpwdw=="', "dXNlcjpwdw=="), ("x-api-key=abc123", "abc123"),
                         ("'Authorization': 'Token abc123'", "abc123"), ("api_key: abc123", "abc123"),
                         ("see https://h/v1?access_token=abc123&x=1", "abc123")]:
        assert secret not in redact(text) and "***" in redact(text), text


# ------------------------------------------------------------------ 13. option validation

@pytest.mark.parametrize("args, message", [
    (["--request-timeout", "0"], "--request-timeout"), (["--request-timeout", "-1"], "--request-timeout"),
    (["--request-timeout", "nan"], "--request-timeout"), (["--max-length", "-5"], "--max-length"),
    (["--max-length", "0"], "--max-length"), (["--batch-size", "-2"], "--batch-size"),
    (["--batch-size", "x"], "--batch-size"), (["--num-concurrent", "0"], "--num-concurrent"),
])
def test_bad_options_are_usage_errors_before_any_work(tmp_path, args, message):
    code, _, err = run_cli(["--store", str(tmp_path / "s.sqlite"), "eval", "http://127.0.0.1:9/v1#m", "-t", "voc_sample",
                            *args])
    assert code == 2 and message in err and "unreachable" not in err
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("url", ["http://[::1/v1#m", "http://h:99999/v1#m", "http://h:abc/v1#m", "http://[zz]/v1#m"])
def test_malformed_urls_are_usage_errors(url):
    code, _, err = run_cli(["eval", url, "-t", "voc_sample"])
    assert code == 2 and "not a valid URL" in err


# ------------------------------------------------------------------ 10. a broken plug-in disables only itself

def test_a_broken_plugin_warns_once_and_fails_only_when_requested(tmp_path, monkeypatch, capsys):
    from evalkit.evaluators import base

    install_plugin(tmp_path, monkeypatch, "evalkit_broken_plugin", "raise ImportError('no module named torchvision2')\n",
                   "broken = evalkit_broken_plugin:Eval")
    assert base.get_evaluator("voc").name == "voc"
    assert base.get_evaluator("lm_eval").name == "lm_eval"
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "'broken' (evalkit_broken_plugin:Eval)" in err and "torchvision2" in err
    with pytest.raises(UsageError, match="plug-in 'broken' .* failed to load: ImportError"):
        base.get_evaluator("broken")
    assert capsys.readouterr().err == ""  # warned once


# ------------------------------------------------------------------ 11. no silent changes to data

def test_ids_are_matched_exactly(tmp_path):
    """An id written with spaces in the data is that id; a predictions file naming it exactly is found."""
    (tmp_path / "d.csv").write_text('id,text,label\n" a1 ",first,A > x\nb2,second,B > z\n')
    task = tmp_path / "t.yaml"
    task.write_text("name: t\nevaluator: voc\ndata: d.csv\nid_field: id\nlabel_field: label\n")
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"task": "t", "id": " a1 ", "output": "A > x"}) + "\n"
                     + json.dumps({"task": "t", "id": "b2", "output": "B > z"}) + "\n")
    code, _, err = run_cli(["--store", str(tmp_path / "s.sqlite"), "eval", str(preds), "-t", str(task),
                            "--out", str(tmp_path / "out")])
    assert code == 0, err
    samples = json.loads((tmp_path / "out" / "results.json").read_text())["tasks"]["t"]["samples"]
    assert sorted(s["sample_id"] for s in samples) == [" a1 ", "b2"] and all(s["correct"] for s in samples)


def _holes_task(tmp_path, rule=None):
    rows = ["id,text,l1,l2,l3", "1,one,A,x,deep", "2,two,A,,deep", "3,three,B,y,", "4,four,B,,"]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    task = tmp_path / "t.yaml"
    task.write_text("name: t\nevaluator: voc\ndata: d.csv\nid_field: id\nlabel_fields: [l1, l2, l3]\n"
                    + (f"label_holes: {rule}\n" if rule else ""))
    return task


def test_a_hole_in_a_label_path_is_skipped_with_a_warning_naming_the_rows(tmp_path, capsys):
    from evalkit.evaluators.base import get_evaluator
    from evalkit.taskconfig import load_task_file

    evaluator = get_evaluator("voc")(load_task_file(_holes_task(tmp_path)))
    paths = {ex.sample_id: ex.path for ex in evaluator.data.test}
    assert paths == {"1": ("A", "x", "deep"), "2": ("A", "deep"), "3": ("B", "y"), "4": ("B",)}
    err = capsys.readouterr().err
    assert "1 row(s) have an empty level inside their label path (row 2: 'A | | deep')" in err
    assert "label_holes: skip" in err and "row 4" not in err  # a missing last level is no hole


def test_label_holes_refuse(tmp_path):
    from evalkit.evaluators.base import get_evaluator
    from evalkit.taskconfig import load_task_file

    evaluator = get_evaluator("voc")(load_task_file(_holes_task(tmp_path, "refuse")))
    with pytest.raises(UsageError, match=r"d.csv: 1 row\(s\) have an empty level inside their label path: row 2"):
        evaluator.data


@pytest.mark.parametrize("labels", [("A > x", " > z"), ("A > x", "A >  > z")])
def test_labels_with_empty_names_are_exit_2_under_refuse(tmp_path, labels):
    (tmp_path / "d.csv").write_text("id,text,label\n" + "".join(f"{i},t{i},{l}\n" for i, l in enumerate(labels)))
    task = tmp_path / "t.yaml"
    task.write_text("name: t\nevaluator: voc\ndata: d.csv\nid_field: id\nlabel_field: label\nlabel_holes: refuse\n")
    preds = tmp_path / "p.jsonl"
    preds.write_text("".join(json.dumps({"task": "t", "id": str(i), "output": "A > x"}) + "\n" for i in range(2)))
    code, _, err = run_cli(["--store", str(tmp_path / "s.sqlite"), "eval", str(preds), "-t", str(task)])
    assert code == 2 and "row 2" in err, err


def test_per_level_label_containing_the_separator_is_exit_2(tmp_path):
    (tmp_path / "d.csv").write_text("id,text,l1,l2\n1,t,A,x > y\n")
    task = tmp_path / "t.yaml"
    task.write_text("name: t\nevaluator: voc\ndata: d.csv\nid_field: id\nlabel_fields: [l1, l2]\n")
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"task": "t", "id": "1", "output": "A"}) + "\n")
    code, _, err = run_cli(["--store", str(tmp_path / "s.sqlite"), "eval", str(preds), "-t", str(task)])
    assert code == 2 and "containing the separator" in err and "row 1" in err


# ------------------------------------------------------------------ 6. bad input is exit 2, never 3

def _valid_comparison(tmp_path) -> Path:
    task = make_voc_task(tmp_path, n=6)
    preds = write_predictions(tmp_path / "p.jsonl", task, n=6)
    assert run_cli(["--store", str(tmp_path / "s.sqlite"), "compare", f"a={preds}", f"b={preds}", "-t", str(task),
                    "--out", str(tmp_path / "out")])[0] == 0
    return tmp_path / "out"


@pytest.mark.parametrize("mutate", [
    lambda c: c.update(checkpoints=[1, 2]), lambda c: c.update(flips=["x"]), lambda c: c.update(flip_counts=[{}]),
    lambda c: c.update(tasks={"a": 1}), lambda c: c["metrics"][0].update(value=float("nan")),
    lambda c: c["metrics"][0].update(value="0.5"), lambda c: c.update(metrics=None),
    lambda c: c["checkpoints"][0].update(label=None), lambda c: c.update(summary=[{"checkpoint": "b", "domain": 3}]),
    lambda c: c.update(verdict={"status": "pass", "checks": [None]}), lambda c: c.update(warnings=[{"x": 1}]),
])
def test_comparison_files_with_a_wrong_inside_are_exit_2(tmp_path, mutate):
    out = _valid_comparison(tmp_path)
    comparison = json.loads((out / "comparison.json").read_text())
    mutate(comparison)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(comparison))
    policy = tmp_path / "policy.yaml"
    policy.write_text("gates:\n  - metric: tiny.path_accuracy\n    max_drop: 0.5\n")
    for argv in (["report", str(bad), "--out", str(tmp_path / "r")], ["gate", str(bad), "--policy", str(policy)]):
        code, _, err = run_cli(argv)
        assert code == 2 and "bad.json" in err and "internal error" not in err, (argv, err)


@pytest.mark.parametrize("mutate", [
    lambda r: r.update(tasks=[1]), lambda r: r["tasks"]["tiny"]["metrics"].update(path_accuracy=float("nan")),
    lambda r: r["tasks"]["tiny"].update(samples=[1]), lambda r: r.update(checkpoint="x"),
    lambda r: r["tasks"]["tiny"].update(n_samples="6"), lambda r: r["tasks"]["tiny"].update(breakdowns=[]),
])
def test_results_files_with_a_wrong_inside_are_exit_2(tmp_path, mutate):
    out = _valid_comparison(tmp_path)
    results = json.loads((out / "results" / "a.json").read_text())
    mutate(results)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(results))
    code, _, err = run_cli(["report", str(bad), str(out / "results" / "b.json"), "--out", str(tmp_path / "r")])
    assert code == 2 and "bad.json" in err and "internal error" not in err, err


@pytest.mark.parametrize("name, content", [
    ("tax.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"), ("tax.txt", b"\xff\xfe\x00A"), ("tax.csv", b"a,b\x00\n\xff"),
    ("tax.json", b"[" * 100000), ("tax.yaml", b"- " * 5000 + b"x"),
])
def test_binary_or_deep_taxonomy_files_are_exit_2(tmp_path, name, content):
    task = make_voc_task(tmp_path, n=4)
    (tmp_path / name).write_bytes(content)
    preds = write_predictions(tmp_path / "p.jsonl", task, n=4)
    code, _, err = run_cli(["--store", str(tmp_path / "s.sqlite"), "eval", str(preds), "-t", str(task),
                            "--set", f"tiny.taxonomy={tmp_path / name}"])
    assert code == 2 and name in err and "internal error" not in err, err


@pytest.mark.parametrize("content", [b"\x00\x01\xff\xfebinary", b"name: [" * 3000, "name: ü\n".encode("latin-1")])
def test_binary_or_deep_task_and_policy_files_are_exit_2(tmp_path, content):
    (tmp_path / "t.yaml").write_bytes(content)
    code, _, err = run_cli(["eval", "x.jsonl", "-t", str(tmp_path / "t.yaml")])
    assert code == 2 and "t.yaml" in err and "internal error" not in err, err
    code, _, err = run_cli(["gate", str(tmp_path / "c.json"), "--policy", str(tmp_path / "t.yaml")])
    assert code == 2 and "t.yaml" in err and "internal error" not in err, err


def test_a_deeply_nested_predictions_line_is_exit_2(tmp_path):
    task = make_voc_task(tmp_path, n=2)
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"task": "tiny", "id": "1", "output": ' + "[" * 100000 + "]" * 100000 + "}\n")
    code, _, err = run_cli(["--store", str(tmp_path / "s.sqlite"), "eval", str(preds), "-t", str(task)])
    assert code == 2 and "p.jsonl" in err and "internal error" not in err, err


def test_damaged_generated_task_files_are_recreated(tmp_path, monkeypatch, capsys):
    """The MMLU task files evalkit generates in its cache are disposable: damaged -> rebuilt with a warning."""
    from evalkit.general.overrides import mmlu_override_dir
    from tests.helpers.mmlu import write_mmlu

    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    data = write_mmlu(tmp_path / "mmlu", {"anatomy": "ABCD"})
    tasks, _ = mmlu_override_dir(data)
    generated = sorted(p for p in tasks.parent.rglob("*.jsonl"))
    good = {p: p.read_bytes() for p in generated}
    generated[0].write_bytes(os.urandom(64))  # a damaged cache file
    (tasks / next(iter(sorted(p.name for p in tasks.glob("*.yaml"))))).write_bytes(b"\xff\xfe garbage")
    capsys.readouterr()
    assert mmlu_override_dir(data)[0] == tasks
    assert "damaged; recreating" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in generated} == good
    assert all(p.read_text(encoding="utf-8") for p in tasks.glob("*.yaml"))


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_device_files_are_refused_not_read_forever(device, tmp_path):
    code, _, err = run_cli(["eval", "x.jsonl", "-t", device])
    assert code == 2 and "internal error" not in err
    code, _, err = run_cli(["gate", device, "--policy", device, "--out", str(tmp_path)])
    assert code == 2 and "not a regular file" in err


def test_a_results_file_with_a_repeated_sample_id_is_exit_2(tmp_path):
    out = _valid_comparison(tmp_path)
    results = json.loads((out / "results" / "a.json").read_text())
    results["tasks"]["tiny"]["samples"].append(results["tasks"]["tiny"]["samples"][0])
    (tmp_path / "dup.json").write_text(json.dumps(results))
    code, _, err = run_cli(["report", str(tmp_path / "dup.json"), str(out / "results" / "b.json"), "--out", str(tmp_path / "r")])
    assert code == 2 and "appear more than once" in err


def test_a_predictions_file_with_a_byte_order_mark_loads(tmp_path):
    task = make_voc_task(tmp_path, n=2)
    preds = write_predictions(tmp_path / "p.jsonl", task, n=2)
    preds.write_bytes(b"\xef\xbb\xbf" + preds.read_bytes())
    assert run_cli(["--store", str(tmp_path / "s.sqlite"), "eval", str(preds), "-t", str(task)])[0] == 0


@pytest.mark.parametrize("where", ["settings", "extra_field", "checkpoints"])
def test_infinity_anywhere_in_a_comparison_is_exit_2(tmp_path, where):
    out = _valid_comparison(tmp_path)
    text = (out / "comparison.json").read_text()
    comparison = json.loads(text)
    if where == "checkpoints":
        comparison["checkpoints"][0]["settings"] = {"x": float("inf")}
    else:
        comparison[where] = {"n_resamples": float("nan")}
    (tmp_path / "c.json").write_text(json.dumps(comparison))
    code, _, err = run_cli(["report", str(tmp_path / "c.json"), "--out", str(tmp_path / "r")])
    assert code == 2 and "NaN or infinity" in err, err


def test_infinity_in_results_settings_is_exit_2(tmp_path):
    out = _valid_comparison(tmp_path)
    results = json.loads((out / "results" / "a.json").read_text())
    results["tasks"]["tiny"]["settings"]["x"] = float("inf")
    (tmp_path / "a.json").write_text(json.dumps(results))
    code, _, err = run_cli(["report", str(tmp_path / "a.json"), str(out / "results" / "b.json"), "--out", str(tmp_path / "r")])
    assert code == 2 and "tasks.tiny.settings.x: NaN or infinity" in err, err


@pytest.mark.parametrize("damage", ["UPDATE samples SET record='{\"x\": 1' WHERE sample_id='2'",
                                    "UPDATE samples SET record='[1, 2]' WHERE sample_id='2'",
                                    "UPDATE runs SET result='nope'", "UPDATE runs SET result='{\"task\": 5}'"])
def test_a_damaged_store_row_is_evaluated_again_with_a_warning(tmp_path, damage):
    task = make_voc_task(tmp_path, n=4)
    preds = write_predictions(tmp_path / "p.jsonl", task, n=4)
    store = str(tmp_path / "s.sqlite")
    argv = ["--store", store, "eval", str(preds), "-t", str(task), "--out"]
    assert run_cli(argv + [str(tmp_path / "a")])[0] == 0
    with sqlite3.connect(store) as conn:
        conn.execute(damage)
    code, _, err = run_cli(argv + [str(tmp_path / "b")])
    assert code == 0 and "damaged" in err and "evaluating" in err, err
    assert _results_without_volatile(tmp_path / "a" / "results.json") == _results_without_volatile(tmp_path / "b" / "results.json")
    code, _, err = run_cli(argv + [str(tmp_path / "c")])
    assert code == 0 and "damaged" not in err  # repaired


def test_a_secret_model_arg_is_redacted_from_outputs(tmp_path):
    task = make_voc_task(tmp_path, n=2)
    preds = write_predictions(tmp_path / "p.jsonl", task, n=2)
    secret = "hf_SecretToken12345"
    code, out, err = run_cli(["--store", str(tmp_path / "s.sqlite"), "eval", str(preds), "-t", str(task),
                              "--model-args", f"token={secret}", "--out", str(tmp_path / "out")])
    assert code == 0, err
    written = (tmp_path / "out" / "results.json").read_text()
    assert secret not in written + out + err and '"token": "***"' in written
