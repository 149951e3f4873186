"""Simulated meters that behave like real devices: real register maps, load profiles, faults on demand."""
