"""Integrations with training frameworks: :mod:`evalkit.integrations.transformers` (``EvalkitCallback``)."""
