"""safetygraph: domain logic for safety-dataset builds (plain Python over Arrow and DuckDB)."""

__version__ = "0.1.0"
