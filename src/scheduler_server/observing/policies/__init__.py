"""Observing policies: each turns a time window and a config into a command script."""
