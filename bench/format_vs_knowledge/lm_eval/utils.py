"""demo_general_generative: the demo's general data (shipped with evalkit) and first-word scoring."""


def load(**_metadata):
    """The shipped demo_general test split, read through its own loader (one copy of the data)."""
    import importlib.util

    from evalkit.taskconfig import shipped_tasks_dir

    path = shipped_tasks_dir() / "lm_eval" / "demo_general" / "utils.py"
    spec = importlib.util.spec_from_file_location("demo_general_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load()


def process_results(doc, results):
    """The answer format is an option's text alone, as the demo base was trained to answer: exact_match = the
    reply (up to the end of its line, stripped) is the right option; parse_failure_rate = it is no option."""
    reply = results[0].split("\n")[0].strip()
    options = [doc["A"], doc["B"], doc["C"], doc["D"]]
    return {"exact_match": float(reply == options[doc["answer"]]), "parse_failure_rate": float(reply not in options)}
