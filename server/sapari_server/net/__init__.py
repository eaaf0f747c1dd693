"""Outbound requests a user can point the server at (import from URL), guarded against SSRF."""
