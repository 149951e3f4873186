"""Modbus driver: TCP, RTU on a serial port and RTU over TCP, with coalesced reads."""
