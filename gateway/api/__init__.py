"""Floor 4: the MQTT topic API. Topic names, payloads, state publishing, commands, audio relay."""
