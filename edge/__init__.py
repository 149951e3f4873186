"""Edge agent: reads meters over Modbus and OPC UA, computes interval energy, publishes readings to MQTT."""
