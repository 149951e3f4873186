"""Alert notifications: MQTT (carbonwatch/v1/{site}/alerts/{rule}, QoS 1) and signed webhooks retried with backoff.

A webhook POST carries `X-Carbonwatch-Timestamp` and `X-Carbonwatch-Signature: sha256=HEX`, the HMAC-SHA256
of `TIMESTAMP.BODY` with the webhook's secret. Failures (network error or non-2xx) are retried with doubling,
jittered delays up to `max_attempts`; every attempt is recorded in the API database.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from api.settings import Webhook
from calc import topics
from records.db import ApiDb
from records.notifications import Deliveries

Publish = Callable[[str, bytes], None]
Sleep = Callable[[float], Awaitable[None]]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does to check a delivery (also used by the tests)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class Notifier:
    """Sends each alert transition to the broker and to every webhook; webhook deliveries run as tracked tasks."""

    def __init__(self, db: ApiDb, site: str, webhooks: tuple[Webhook, ...], publish: Publish | None,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.deliveries = Deliveries(db)
        self.site = site
        self.webhooks = webhooks
        self.publish = publish
        self.sleep = sleep
        self.tasks: set[asyncio.Task[bool]] = set()
        self.client = httpx.AsyncClient()

    def send(self, transition: str, alert: dict[str, Any]) -> None:
        body = json.dumps({"transition": transition, "site": self.site, "alert": alert},
                          sort_keys=True, separators=(",", ":")).encode()
        if self.publish is not None:
            self.publish(topics.alert(self.site, str(alert["rule"])), body)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (an app used without its lifespan): nothing can deliver
            return
        for hook in self.webhooks:
            task = loop.create_task(self.deliver(hook, int(alert["id"]), transition, body),
                                                          name=f"webhook {hook.url} alert {alert['id']}")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def deliver(self, hook: Webhook, alert_id: int, transition: str, body: bytes) -> bool:
        delay = hook.backoff_s
        for attempt in range(1, hook.max_attempts + 1):
            stamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Carbonwatch-Timestamp": stamp,
                       "X-Carbonwatch-Signature": sign(hook.secret, stamp, body),
                       "X-Carbonwatch-Delivery": f"{alert_id}-{transition}", "X-Carbonwatch-Attempt": str(attempt)}
            status: int | None = None
            error: str | None = None
            try:
                resp = await self.client.post(hook.url, content=body, headers=headers, timeout=hook.timeout_s)
                status = resp.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            await asyncio.to_thread(self.deliveries.add, alert_id, transition, hook.url, attempt, status, error)
            if error is None:
                return True
            if attempt < hook.max_attempts:
                await self.sleep(delay * (0.8 + 0.4 * random.random()))
                delay *= 2
        return False

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for deliveries in flight (at shutdown), then close the HTTP client."""
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=timeout_s)
            for task in pending:
                task.cancel()
        await self.client.aclose()
