"""OPC UA driver: subscriptions, polling fallback, reconnect and re-subscribe."""
