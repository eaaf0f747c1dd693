"""Telling users about finished work outside the notebook: mail on export completion or failure."""
