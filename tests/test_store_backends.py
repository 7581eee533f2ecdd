"""Store locations and the PostgreSQL backend against a real server: URLs, credentials, schema versions,
many writers with kills, export/import, gc, sequential resume, and two working directories sharing one store."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from evalkit.errors import UsageError
from evalkit.records import SampleRecord
from evalkit.run import evaluate_checkpoint
from evalkit.store import STORE_VERSION, ResultStore, RunKey, collect_garbage, export_store, import_store, list_runs
from tests.helpers.fake import FakeCheckpoint, counting_task
from tests.helpers.postgres import PASSWORD


def _cli(*args) -> int:
    from evalkit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    return exit_info.value.code


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("evalkit: error: "), err
    return lines[0]


# ---------------------------------------------------------------------------------------- locations

@pytest.mark.parametrize("url, says", [
    ("mysql://ci:hunter22@db/evals", "'mysql:' is not a result store scheme"),
    ("postgres:/evals", "'//' is missing after 'postgres:'"),
    ("postgresql:evals", "'//' is missing after 'postgresql:'"),
    ("http://ci:hunter22@db/evals", "'http:' is not a result store scheme"),
])
def test_other_urls_are_refused_not_created_as_files(url, says, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _cli("--store", url, "store", "ls") == 2
    line = _one_error_line(capsys)
    assert "--store" in line and says in line and "hunter22" not in line
    monkeypatch.setenv("EVALKIT_STORE", url)  # the environment variable is read the same way
    with pytest.raises(UsageError, match="is not a result store scheme|is missing") as error:
        ResultStore()
    assert error.value.param == "store"
    assert list(tmp_path.iterdir()) == [], "nothing may be created for a refused URL"


def test_sqlite_url_and_plain_paths_are_files(tmp_path):
    with ResultStore(f"sqlite://{tmp_path}/a.sqlite") as store:
        assert store.kind == "sqlite" and store.path == tmp_path / "a.sqlite"
    assert (tmp_path / "a.sqlite").is_file()


def test_connection_problems_are_one_line_without_the_password(postgres_server, monkeypatch, capsys, tmp_path):
    good = postgres_server.empty_store()
    database = good.rsplit("/", 1)[1]
    port = postgres_server.port
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    cases = [
        (f"postgresql://evalkit:wrong-pass-9d1@127.0.0.1:{port}/{database}", "password authentication failed"),
        (f"postgresql://evalkit:{PASSWORD}@127.0.0.1:{port}/no_such_db", "does not exist"),
        (f"postgresql://evalkit:{PASSWORD}@127.0.0.1:{_closed_port()}/{database}", "cannot connect"),
    ]
    for url, says in cases:
        assert _cli("--store", url, "store", "ls") == 2
        line = _one_error_line(capsys)
        assert says in line and "wrong-pass-9d1" not in line and PASSWORD not in line
        assert "evalkit@127.0.0.1" in line, "the location is named, without its password"
    bare = f"postgresql://evalkit@127.0.0.1:{port}/{database}"
    monkeypatch.setenv("PGPASSWORD", "wrong-pass-9d1")
    assert _cli("--store", bare, "store", "ls") == 2
    assert "wrong-pass-9d1" not in _one_error_line(capsys)
    monkeypatch.setenv("PGPASSWORD", PASSWORD)  # credentials as libpq takes them: PGPASSWORD ...
    assert _cli("--store", bare, "store", "ls") == 0
    monkeypatch.delenv("PGPASSWORD")
    passfile = tmp_path / "pgpass"  # ... and a .pgpass file
    passfile.write_text(f"127.0.0.1:{port}:*:evalkit:{PASSWORD}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    assert _cli("--store", bare, "store", "ls") == 0
    assert PASSWORD not in capsys.readouterr().out


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------- schema versions

def test_a_newer_schema_is_refused_in_one_line(store_location, capsys):
    with ResultStore(store_location) as store:
        assert store._db.query("SELECT value FROM meta WHERE key='store_version'") == [(str(STORE_VERSION),)]
        store._db.transaction(lambda run: run("UPDATE meta SET value='99' WHERE key='store_version'"))
    with pytest.raises(UsageError, match=f"schema is version 99, newer than this evalkit understands \\({STORE_VERSION}\\)"):
        ResultStore(store_location)
    assert _cli("--store", store_location, "store", "ls") == 2
    line = _one_error_line(capsys)
    assert "newer than this evalkit understands" in line and PASSWORD not in line


def test_a_store_written_before_the_version_table_held_migrations_opens(tmp_path):
    """A SQLite file as evalkit 0.x wrote it (version '1' in meta) keeps its runs."""
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE runs (run_key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, task TEXT NOT NULL,
              config_hash TEXT NOT NULL, evaluator TEXT NOT NULL, evaluator_version TEXT NOT NULL,
              lm_eval_version TEXT NOT NULL, checkpoint TEXT NOT NULL, status TEXT NOT NULL, result TEXT,
              created REAL NOT NULL, updated REAL NOT NULL);
            CREATE TABLE samples (run_key TEXT NOT NULL, sample_id TEXT NOT NULL, record TEXT NOT NULL,
              PRIMARY KEY (run_key, sample_id));
            INSERT INTO meta VALUES ('store_version', '1');
            INSERT INTO runs VALUES ('k', 'fp', 't', 'c', 'counting', '1', 'x', '{"label": "old"}', 'running', NULL, 1, 2);
        """)
    with ResultStore(path) as store:
        assert [run["label"] for run in list_runs(store)] == ["old"]


# ---------------------------------------------------------------------------------------- many writers

class _StallingCheckpoint(FakeCheckpoint):
    """Answers 7 samples (two batches of 3 committed, one in flight), says so in ``marker``, then hangs."""

    def __init__(self, marker: Path, **kwargs):
        super().__init__(**kwargs)
        self.marker = marker

    @property
    def lm(self):
        lm = super().lm
        answer = type(lm).answer

        def stalling(sample_id: str) -> bool:
            if lm.calls == 7:
                self.marker.touch()
                time.sleep(3600)  # until SIGKILL
            return answer(lm, sample_id)

        lm.answer = stalling
        return lm


def _worker(location: str, worker: int, markers: Path) -> None:
    """Evaluate the run every worker shares and one shared by pairs of workers; workers 0-2 stall to be killed."""
    with ResultStore(location) as store:
        for fingerprint in ("shared", f"pair{worker // 2}"):
            checkpoint = (_StallingCheckpoint(markers / str(worker), label=fingerprint, fingerprint=fingerprint)
                          if worker < 3 else FakeCheckpoint(label=fingerprint, fingerprint=fingerprint))
            evaluate_checkpoint(checkpoint, [counting_task(n=24, batch=3, sleep=0.005)], store)


def _records(location: str) -> dict[str, dict]:
    with ResultStore(location) as store:
        out = {}
        for run in list_runs(store):
            key = next(k for k in _keys() if k.id == run["run_key"])
            out[key.fingerprint] = {sid: r.to_dict() for sid, r in store.load_samples(key).items()}
            assert run["status"] == "complete" and run["samples"] == 24
        return out


def _keys() -> list[RunKey]:
    from evalkit.run import run_keys

    return [run_keys(FakeCheckpoint(fingerprint=fp), [counting_task(n=24, batch=3)], [_evaluator()])[0]
            for fp in ("shared", "pair0", "pair1", "pair2", "pair3")]


def _evaluator():
    from tests.helpers.fake import CountingEvaluator

    return CountingEvaluator(counting_task(n=24, batch=3))


@pytest.mark.slow
def test_eight_writers_with_kills_equal_a_serial_run(postgres_server, tmp_path):
    url = postgres_server.empty_store()
    ResultStore(url).close()  # schema first: the workers race on rows, not on CREATE TABLE
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_worker, args=(url, w, tmp_path)) for w in range(8)]
    # The stalling workers start first and stall before the others run: started together, the others could
    # finish the shared runs before a stalling worker reached its 7th sample, and it would never stall.
    for process in workers[:3]:
        process.start()
    deadline = time.monotonic() + 120
    while not all((tmp_path / str(w)).exists() for w in range(3)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all((tmp_path / str(w)).exists() for w in range(3)), "a stalling worker never reached its 7th sample"
    for process in workers[3:]:
        process.start()
    time.sleep(0.2)  # the five writers race beside the three open, uncommitted batches
    for process in workers[:3]:  # mid-run, a batch in flight: nothing of it may be committed
        os.kill(process.pid, signal.SIGKILL)
    for process in workers:
        process.join(180)
    assert [p.exitcode for p in workers] == [-signal.SIGKILL] * 3 + [0] * 5
    with ResultStore(url) as store:  # the killed workers' runs resume from any machine: here, serially
        for fingerprint in ("shared", "pair0", "pair1"):
            evaluate_checkpoint(FakeCheckpoint(fingerprint=fingerprint), [counting_task(n=24, batch=3)], store)
    serial = str(tmp_path / "serial.sqlite")
    with ResultStore(serial) as store:
        for fingerprint in ("shared", "pair0", "pair1", "pair2", "pair3"):
            evaluate_checkpoint(FakeCheckpoint(fingerprint=fingerprint), [counting_task(n=24, batch=3)], store)
    assert _records(url) == _records(serial)


# ---------------------------------------------------------------------------------------- export / import / gc

def _fill(location: str) -> None:
    """A complete run, another checkpoint's complete run and an unfinished one."""
    with ResultStore(location) as store:
        evaluate_checkpoint(FakeCheckpoint(label="a", fingerprint="fa"), [counting_task(n=6)], store)
        evaluate_checkpoint(FakeCheckpoint(label="b", fingerprint="fb"), [counting_task(n=6)], store)
        key = RunKey("fc", "count", "n6", "counting", "1", "x")
        store.start_run(key, {"label": "c"})
        store.add_samples(key, [SampleRecord("0001", correct=True, scores={"acc": 1.0})])


def test_export_import_round_trip_between_backends(postgres_server, tmp_path, capsys):
    sqlite_store, postgres = str(tmp_path / "a.sqlite"), postgres_server.empty_store()
    _fill(sqlite_store)
    first, second = tmp_path / "from_sqlite.jsonl", tmp_path / "from_postgres.jsonl"
    assert _cli("--store", sqlite_store, "store", "export", str(first)) == 0
    assert _cli("--store", postgres, "store", "import", str(first)) == 0
    assert "3 new run(s), 2 more complete, 13 new sample(s)" in capsys.readouterr().out
    assert _cli("--store", postgres, "store", "export", str(second)) == 0
    assert first.read_bytes() == second.read_bytes(), "the same runs export to the same bytes from either backend"
    with ResultStore(postgres) as store:
        assert import_store(store, first)["samples_added"] == 0, "importing twice adds nothing"
        again = FakeCheckpoint(label="a", fingerprint="fa")
        assert evaluate_checkpoint(again, [counting_task(n=6)], store).tasks["count"].timing["answered_from_store"]
        assert again.loads == 0
        key = RunKey("fc", "count", "n6", "counting", "1", "x")
        assert sorted(store.load_samples(key)) == ["0001"]
        with ResultStore(sqlite_store) as source:
            assert [r["label"] for r in list_runs(store)] == [r["label"] for r in list_runs(source)]
            assert store.completed_result(_key_of(again)).samples == source.completed_result(_key_of(again)).samples


def _key_of(checkpoint) -> RunKey:
    from evalkit.run import run_keys
    from tests.helpers.fake import CountingEvaluator

    return run_keys(checkpoint, [counting_task(n=6)], [CountingEvaluator(counting_task(n=6))])[0]


def test_a_damaged_export_changes_nothing(store_location, tmp_path):
    source = str(tmp_path / "src.sqlite")
    _fill(source)
    path = tmp_path / "runs.jsonl"
    with ResultStore(source) as store:
        export_store(store, path)
    lines = path.read_text().splitlines()
    entry = json.loads(lines[2])
    entry["samples"]["0002"] = '{"sample_id": ['
    path.write_text("\n".join([*lines[:2], json.dumps(entry), *lines[3:]]) + "\n")
    with ResultStore(store_location) as store:
        with pytest.raises(UsageError, match=r"runs.jsonl:3: sample '0002' is damaged"):
            import_store(store, path)
        assert list_runs(store) == []
        path.write_text('{"not": "an export"}\n')
        with pytest.raises(UsageError, match="not an evalkit store export"):
            import_store(store, path)


def test_gc_drops_runs_no_installed_code_can_reuse(store_location, capsys, monkeypatch):
    from evalkit.run import library_versions

    lm_eval = library_versions()["lm-eval"]
    with ResultStore(store_location) as store:
        for fingerprint, evaluator, version, lm in [("keep", "counting", "1", lm_eval), ("old-lm", "counting", "1", "0.0.1"),
                                                    ("old-ev", "counting", "0", lm_eval), ("plugin", "not-installed", "3", lm_eval)]:
            key = RunKey(fingerprint, "t", "c", evaluator, version, lm)
            store.start_run(key, {"label": fingerprint})
            store.add_samples(key, [SampleRecord("1")])
    assert _cli("--store", store_location, "store", "gc", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would drop old-lm / t (1 samples): lm-eval 0.0.1" in out and "would drop old-ev" in out
    assert "would drop 2 runs" in out
    with ResultStore(store_location) as store:
        assert len(list_runs(store)) == 4, "--dry-run drops nothing"
        assert sorted(run["label"] for run in collect_garbage(store)) == ["old-ev", "old-lm"]
        assert sorted(run["label"] for run in list_runs(store)) == ["keep", "plugin"]
        assert store._db.query("SELECT COUNT(*) FROM samples") == [(2,)], "their samples go too"
    assert _cli("--store", store_location, "store", "ls", "--json") == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted((r["label"], r["samples"], r["status"]) for r in listed) == [("keep", 1, "running"), ("plugin", 1, "running")]
    monkeypatch.setenv("EVALKIT_STORE", store_location)  # the same store named by the environment
    assert _cli("store", "ls") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].endswith(": 2 runs") and PASSWORD not in table[0]
    assert sorted(line.split()[2] for line in table[2:]) == ["keep", "plugin"]


# ---------------------------------------------------------------------------------------- two machines

_VOC = {"voc_sample": {"n_resamples": 0}}  # no CIs: they are not what is tested here, and cost seconds


def _predictions(text: str, folder: Path) -> Path:
    path = folder / "preds.jsonl"
    path.write_text(text)
    return path


def _predictions_text() -> str:
    from evalkit import api
    from evalkit.run import build_evaluators

    ids = build_evaluators(api.with_limit(api.resolve(["voc_sample"], _VOC), 6, 0))[0].sample_ids()
    return "".join(json.dumps({"task": "voc_sample", "id": sid, "output": "Billing" if i % 2 else "x"}) + "\n"
                   for i, sid in enumerate(ids))


def _stable(result) -> str:
    """results.json without what describes the run rather than the result (timing, creation time)."""
    from evalkit._io import dump_json

    data = result.to_dict()
    data.pop("created", None)
    for task in data["tasks"].values():
        task.pop("timing", None)
    return dump_json(data)


@pytest.mark.slow
def test_two_working_directories_share_one_postgresql_store_as_one_sqlite_file(postgres_server, tmp_path, monkeypatch):
    from evalkit import api

    outputs, predictions = {}, _predictions_text()
    for kind, store in [("postgresql", postgres_server.empty_store()), ("sqlite", str(tmp_path / "one.sqlite"))]:
        got = []
        for machine in ("a", "b"):  # each "machine" has its own folder and its own copy of the predictions
            folder = tmp_path / machine  # the same folders for both backends: the spec (a path) is in results
            folder.mkdir(exist_ok=True)
            monkeypatch.chdir(folder)
            got.append(api.evaluate(str(_predictions(predictions, folder)), "voc_sample", overrides=_VOC, limit=6,
                                    store=store))
        assert [r.tasks["voc_sample"].timing["answered_from_store"] for r in got] == [False, True]
        outputs[kind] = [_stable(r) for r in got]
    assert outputs["postgresql"] == outputs["sqlite"]
    first, second = (json.loads(text) for text in outputs["postgresql"])
    assert first["tasks"] == second["tasks"], "machine b got machine a's results"


def test_a_value_postgresql_cannot_hold_is_a_usage_error(postgres_server):
    with ResultStore(postgres_server.empty_store()) as store:
        key = RunKey("fp", "t", "c", "counting", "1", "x")
        store.start_run(key, {"label": "a"})
        with pytest.raises(UsageError, match="PostgreSQL cannot store a value .*NUL"):
            store.add_samples(key, [SampleRecord("a\x00b"), SampleRecord("ok")])
        assert store.count_samples(key) == 0, "the batch is one transaction: nothing of it is stored"


def test_a_dropped_connection_is_opened_again(postgres_server):
    """A server restart or a proxy dropping an idle connection (while a model loads) costs no run."""
    import psycopg

    with ResultStore(postgres_server.empty_store()) as store:
        key = RunKey("fp", "t", "c", "counting", "1", "x")
        store.start_run(key, {"label": "a"})
        for operation in (lambda: store.add_samples(key, [SampleRecord("1")]), lambda: store.count_samples(key)):
            pid = store._db._conn.info.backend_pid
            with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            operation()
            assert store._db._conn.info.backend_pid != pid
        assert store.count_samples(key) == 1


# ---------------------------------------------------------------------------------------- sequential resume

def test_sequential_stop_and_resume_through_either_store(store_location, capsys):
    """A sequential run leaves its stopped runs open in the store; a stricter one resumes from their samples."""
    from evalkit.evaluators.base import MetricSpec
    from evalkit.gate import as_policy
    from evalkit.sequential import drive_sequential
    from tests.helpers.fake import CountingEvaluator

    class Scored(CountingEvaluator):  # the fake's acc declared a per-sample score, which confidence sequences need
        def aggregate(self, records):
            result = super().aggregate(records)
            result.metric_specs = {"acc": MetricSpec(level="sample").to_dict()}
            return result

    task = counting_task(n=400, batch=20)
    checkpoints = [FakeCheckpoint(label="base", fingerprint="b"), FakeCheckpoint(label="twin", fingerprint="t")]

    def run(significance: float):  # a 0.25 margin: identical twins are shown within it early (at 0.05 they need > 400)
        policy = as_policy({"gates": [{"metric": "count.acc", "max_drop": 0.25, "significance": significance}]})
        with ResultStore(store_location) as store:
            return drive_sequential(checkpoints, [task], [Scored(task)], store, policy, baseline="base", chunk_size=40)[1]

    first = run(0.05)["tasks"]["count"]
    assert first["stopped_early"] and first["samples_used"] < 400
    with ResultStore(store_location) as store:
        assert store.runs() == [], "stopped runs stay open"
        stored = {run["label"]: run["samples"] for run in list_runs(store)}
    assert stored == {"base": first["samples_used"], "twin": first["samples_used"]}
    calls = [c.lm.calls for c in checkpoints]
    second = run(1e-9)["tasks"]["count"]
    assert second["samples_used"] > first["samples_used"]
    new_calls = [c.lm.calls - before for c, before in zip(checkpoints, calls)]
    assert new_calls == [second["samples_used"] - first["samples_used"]] * 2, "stored samples are not evaluated again"
