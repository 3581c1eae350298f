"""Tests of printfleet.testing: the real-service controllers the rest of the suite relies on."""
