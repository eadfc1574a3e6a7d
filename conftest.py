import os

# Tests run the site in development mode (no secrets needed); pytest-django still turns DEBUG off
# for the requests it makes, so error pages are the ones visitors see.
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
