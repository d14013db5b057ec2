"""Offline end-to-end tests: sam build + sam local invoke in a real container against a moto server.

Entry point: ``bash tests/e2e/run.sh`` (``make e2e``). See tests/e2e/README.md.
"""
