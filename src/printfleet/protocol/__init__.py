"""The sans-IO core: messages, signing, clocks, the printer-side gate, the job lifecycle.

Nothing here does I/O, reads a clock or imports asyncio: callers pass bytes and times in and
get decisions out, so the agent, the cloud, the simulator and the checker share one truth.
"""

from printfleet.protocol.clock import ClockEstimate, ClockOffsetEstimator
from printfleet.protocol.dispatch import DispatchPolicy, JobView, LinkEvidence, PrinterView, plan
from printfleet.protocol.gate import (
    Gate,
    GateDecision,
    GateSettings,
    PlateReading,
    PrinterState,
    SafetyGate,
)
from printfleet.protocol.issuer import CommandIssuer, Lifetimes
from printfleet.protocol.journal import Journal, JournalRecord
from printfleet.protocol.lifecycle import IllegalTransitionError, JobEvent, JobState, transition
from printfleet.protocol.messages import (
    Command,
    CommandType,
    DecodeError,
    Event,
    Telemetry,
    decode_command,
    decode_event,
    decode_telemetry,
    encode,
)
from printfleet.protocol.printer import Output, PrinterCore
from printfleet.protocol.reasons import Reason
from printfleet.protocol.signing import CommandSigner, CommandVerifier
from printfleet.protocol.topics import Topics

__all__ = [
    "ClockEstimate",
    "ClockOffsetEstimator",
    "Command",
    "CommandIssuer",
    "CommandSigner",
    "CommandType",
    "CommandVerifier",
    "DecodeError",
    "DispatchPolicy",
    "Event",
    "Gate",
    "GateDecision",
    "GateSettings",
    "IllegalTransitionError",
    "JobEvent",
    "JobState",
    "JobView",
    "Journal",
    "JournalRecord",
    "Lifetimes",
    "LinkEvidence",
    "Output",
    "PlateReading",
    "PrinterCore",
    "PrinterState",
    "PrinterView",
    "Reason",
    "SafetyGate",
    "Telemetry",
    "Topics",
    "decode_command",
    "decode_event",
    "decode_telemetry",
    "encode",
    "plan",
    "transition",
]
