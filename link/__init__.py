"""Plumbing the services share that is not pure (so not in calc/): the capped, jittered reconnect backoff and
throttled repeat logging. Imported by edge and ingest, which never import each other.
"""
