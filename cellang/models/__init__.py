"""Models: one small file per architecture, each with a config dataclass."""
