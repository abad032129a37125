"""Tasks: what the app pages and scripts call. Each task takes plain inputs and returns tables or objects."""
