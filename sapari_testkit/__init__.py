"""Test support, not shipped: media generators with exact ground truth (tests, bench, scripts)."""
