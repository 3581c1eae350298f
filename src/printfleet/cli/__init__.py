"""The ``printfleet`` command: one entry point for every part of printfleet.

The one place that wires printfleet's packages together. One module per command group:
``processes`` (serve, agent, sim, demo), ``chaos``, ``bench``, ``protocol``, and the client
commands ``login``, ``printers`` (printers, status, confirm-plate, share), ``jobs`` (upload,
print, jobs, cancel), ``alerts`` and ``watch``, which share ``profiles``, ``failures`` and
``output``; :mod:`printfleet.cli.main` assembles the app.
"""

from printfleet.cli.main import app, main

__all__ = ["app", "main"]
