"""Attack payloads planted in every free-text field of a comparison, for the report's escaping tests."""

from __future__ import annotations

PAYLOADS = ["<script>window.__pwned=1</script>", '<img src=x onerror="window.__pwned=1">']
#: Keys whose values are enums or join keys; every other string is free text and gets the payload.
ENUM_KEYS = {"axis", "kind", "direction", "status", "severity", "test", "diagnosis", "schema_version", "baseline",
             "checkpoint", "label", "task", "name", "loglik_task", "generative_task", "metric", "primary_metric",
             "ci_method"}


def poison(value, key=None):
    """Append an attack payload to every free-text string; keep enum and join keys intact."""
    if isinstance(value, dict):
        return {k: poison(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [poison(v, key) for v in value]
    if isinstance(value, str) and key not in ENUM_KEYS:
        return value + " " + " ".join(PAYLOADS)
    return value
