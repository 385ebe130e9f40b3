"""Tests of the sat policy."""
