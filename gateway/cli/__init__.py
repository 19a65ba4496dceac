"""Floor 5: the `callgate` command line."""
