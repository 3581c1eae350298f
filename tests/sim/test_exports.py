"""Pin the public names of the Hardware port and the simulator, so changes are deliberate."""

from __future__ import annotations

import printfleet.sim
from printfleet.agent import hardware


def test_hardware_port_exports() -> None:
    assert sorted(hardware.__all__) == sorted(
        [
            "WATCHDOG_TIMEOUT_S",
            "EjectNotSupportedError",
            "FileNameError",
            "Hardware",
            "HardwareClock",
            "HardwareError",
            "HeaterId",
            "HeaterReading",
            "Loadout",
            "LoadoutError",
            "MaterialSlot",
            "MessageLevel",
            "PlateReading",
            "PrintHandle",
            "PrintOutcome",
            "PrintOutcomeKind",
            "PrintProgress",
            "PrintState",
            "PrinterBusyError",
            "Prompt",
            "PromptAnswer",
            "Screen",
            "Storage",
            "StoredFile",
            "TargetOutOfRangeError",
            "validate_file_name",
        ]
    )
    assert all(hasattr(hardware, name) for name in hardware.__all__)


def test_sim_exports() -> None:
    assert sorted(printfleet.sim.__all__) == sorted(
        [
            "MODELS",
            "Board",
            "GcodeInterpreter",
            "GcodeMetadata",
            "HeaterFault",
            "Plate",
            "PlateSensor",
            "PrinterModel",
            "SampleGcode",
            "SimClock",
            "SimScreen",
            "SimStorage",
            "SimulatedPrint",
            "SimulatedPrinter",
            "SlicerStyle",
            "make_sample_gcode",
            "parse_metadata",
        ]
    )
    assert all(hasattr(printfleet.sim, name) for name in printfleet.sim.__all__)
