"""Authentication for the embedded amqtt broker: admit every client (it listens on loopback only) and keep
persistent sessions. amqtt's own anonymous plugin marks clients anonymous, and amqtt then queues nothing for a
disconnected clean_session=false client: ingest would lose what the edge publishes while ingest restarts."""

from __future__ import annotations

from dataclasses import dataclass

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session


class SessionKeepingAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no types
    """Accept every connection as a named (non-anonymous) session, as MQTT 3.1.1 section 3.1.2.4 expects."""

    @dataclass
    class Config:
        """No options."""

    async def authenticate(self, *, session: Session) -> bool:
        session.is_anonymous = False
        return True
