"""Floor 3: modems. Profiles loaded from firmware_config/ and the per-modem Line (call control)."""
