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
    """exact_match: the reply's first word is the right option; parse_failure_rate: it is no option at all."""
    words = results[0].split()
    first = words[0].strip(".,;:!?") if words else ""
    options = [doc["A"], doc["B"], doc["C"], doc["D"]]
    return {"exact_match": float(first == options[doc["answer"]]), "parse_failure_rate": float(first not in options)}
