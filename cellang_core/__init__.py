"""cellang: do cells have a language?

The core package holds all logic; the Streamlit pages and the scripts only call it.
Data flows one way: sources -> data -> tokenisers -> models -> tasks -> app/scripts.
"""

__version__ = "0.1.0"
