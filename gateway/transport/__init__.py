"""Floor 1: byte pipes. Serial ports, the MQTT client connection and the embedded broker."""
