"""Bare Django: one settings call, three views, one unmanaged model."""
