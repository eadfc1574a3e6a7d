"""Fakes of the external services, each a real HTTP server on 127.0.0.1 speaking their protocol."""
