"""pytest fixtures for this app's tests and for site developers' own. (Issue 3.)"""
