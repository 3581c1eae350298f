"""The protocol's public surface is deliberate: adding or removing a name is a visible change."""

import printfleet.protocol


def test_all_names_are_exported_and_exist() -> None:
    for name in printfleet.protocol.__all__:
        assert hasattr(printfleet.protocol, name), name
    assert sorted(printfleet.protocol.__all__) == printfleet.protocol.__all__


def test_the_public_surface_is_pinned() -> None:
    assert set(printfleet.protocol.__all__) == {
        "ClockEstimate", "ClockOffsetEstimator", "Command", "CommandIssuer", "CommandSigner",
        "CommandType", "CommandVerifier", "DecodeError", "DispatchPolicy", "Event", "Gate",
        "GateDecision", "GateSettings", "IllegalTransitionError", "JobEvent", "JobState",
        "JobView", "Journal", "JournalRecord", "Lifetimes", "LinkEvidence", "Output",
        "PlateReading", "PrinterCore", "PrinterState", "PrinterView", "Reason", "SafetyGate",
        "Telemetry", "Topics", "decode_command", "decode_event", "decode_telemetry", "encode",
        "plan", "transition",
    }  # fmt: skip
