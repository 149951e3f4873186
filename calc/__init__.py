"""The pure accounting core: units, the reading schema, factor sets, emission formulas and counters.

No I/O, no clock, no logging: every other package imports calc; calc imports none of them.
"""
