"""Floor 3: the contact center. Queues, agents and their states, routing, contact records."""
