"""SCADA integration: live CO2e figures served over OPC UA, Sparkplug B and Modbus TCP (each switched on in [scada])."""
