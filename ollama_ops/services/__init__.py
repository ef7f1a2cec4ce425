"""Services: one per job; they return dataclasses and never print or exit."""
