"""Proof under faults: fault injectors, a deterministic fleet simulation, and the S1-S9 checker."""
