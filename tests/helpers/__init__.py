"""Helpers the test modules share, by purpose; test modules import these, never each
other, and conftest.py builds its fixtures from them."""
