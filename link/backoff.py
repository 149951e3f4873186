"""Reconnect backoff shared by every link that retries (MQTT publisher, Modbus and OPC UA drivers)."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter in [half, whole] of the step: `base_s * 2**attempt`,
    at most `cap_s`, so a fleet of clients that lost the same server does not come back in step."""
    step = min(cap_s, base_s * (2 ** attempt))
    return float(step * rng.uniform(0.5, 1.0))
