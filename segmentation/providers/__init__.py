"""Clients for the third-party services that receive visitors' photos, one module per provider.

Each client is the only code that talks to its service; `http` holds what they share.
"""
