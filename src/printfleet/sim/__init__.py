"""Simulated printer hardware: thermal models, G-code runner, plate, screen, SD card and faults."""

from printfleet.gcode.metadata import GcodeMetadata, parse_metadata
from printfleet.sim.clock import SimClock
from printfleet.sim.gcode import GcodeInterpreter, SimulatedPrint
from printfleet.sim.plate import Plate, PlateSensor
from printfleet.sim.printer import MODELS, PrinterModel, SimulatedPrinter
from printfleet.sim.samples import SampleGcode, SlicerStyle, make_sample_gcode
from printfleet.sim.screen import SimScreen
from printfleet.sim.storage import SimStorage
from printfleet.sim.thermal import Board, HeaterFault

__all__ = [
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
