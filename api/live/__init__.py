"""The API's live part: the MQTT feed (`mqtt_feed`), the live per-meter values and period sums (`live_sums`), the
rule runner that evaluates rules on each message and stores, notifies and streams alert transitions
(`rule_runner`), and the SSE hub (`stream`)."""
