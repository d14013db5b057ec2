"""Fixtures for tests/integration (defined in ``awsworld``, a module name no other test folder uses)."""

from awsworld import _aws_env, _reset_metrics, aws, lambda_context, scaler_env, world  # noqa: F401
