"""How the services hold their links: the one MQTT client factory (URL, login, TLS, MQTT 5 → 3.1.1 fallback),
the capped, jittered reconnect backoff, and throttled repeat logging. Not pure (it builds clients and logs);
imported by edge, ingest, api and scada, which never import each other. See link/README.md.
"""
