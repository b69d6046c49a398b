"""Runnable examples: pipelines, loop types, scripts. Import as ``examples`` from the repo root."""
