"""Tokenisers: turn gene sets and cells into token ids (and back)."""
