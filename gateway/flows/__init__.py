"""Floor 3: contact flows in the Amazon Connect flow language: model, validation, interpreter."""
