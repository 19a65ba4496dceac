"""Floor 2: the AT protocol. Line framing, URC classification, the command session and its errors."""
