"""URL configurations a site gets wrong, for the system checks' tests (``test_checks.py``)."""
