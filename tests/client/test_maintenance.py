"""The SDK's maintenance model against the server's answer (the calls themselves run against a
real cloud in tests/cloud/test_maintenance.py)."""

from __future__ import annotations

from printfleet.client import calls, models
from printfleet.cloud.api.maintenance import MaintenanceInterval, PartOut


def test_the_part_model_mirrors_the_servers_answer() -> None:
    assert set(models.MaintenancePart.model_fields) == set(PartOut.model_fields)


def test_the_interval_call_sends_what_the_server_reads() -> None:
    call = calls.set_maintenance_interval("x1-01", "nozzle", 300)
    assert (call.method, call.path) == ("PUT", "/api/v1/printers/x1-01/maintenance/nozzle")
    assert MaintenanceInterval.model_validate(call.json).interval_h == 300
    reset = calls.set_maintenance_interval("x1-01", "belts", None)
    assert MaintenanceInterval.model_validate(reset.json).interval_h is None
