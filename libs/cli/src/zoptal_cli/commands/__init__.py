"""One module per command group: projects, billing, notify, events."""
