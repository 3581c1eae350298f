"""The SDK tests' fixtures: a real cloud served from a thread (tests/client/live_cloud.py)."""

from tests.client.live_cloud import close_people, live_cloud

__all__ = ["close_people", "live_cloud"]
