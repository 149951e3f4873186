"""The wiring: the `carbonwatch` command, the all-in-one runner, example configs and the test services."""
