"""Floor 2: call audio. The 8 kHz 20 ms frame model, G.711, tones, prompts and recording."""
