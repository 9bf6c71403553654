"""Edges only: the promptsim CLI (and later the HTTP API and UI)."""
