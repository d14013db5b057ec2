"""moto's server, plus the one Application Auto Scaling read the pre-scaler makes that moto lacks.

moto 5.2 answers DescribeScalingActivities with HTTP 500 ("The describe_scaling_activities action has
not been implemented"), and boto3 retries that, so a handler in a Lambda container fails. In moto's
world no scaling activity ever runs (moto never scales anything), so the faithful answer is the real
response shape with no activities. The in-process integration tests answer this call client-side
(tests/integration/awsworld.py); a handler in a container can only be answered by the server.

Usage (the image's entrypoint): python3 /opt/e2e/moto_server.py --host 0.0.0.0 --port 5000
"""

from __future__ import annotations

import json
import sys

from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
from moto.server import main


def describe_scaling_activities(self: ApplicationAutoScalingResponse) -> str:
    """DescribeScalingActivities: validates like its siblings, returns no activities."""
    self._validate_params()
    return json.dumps({"ScalingActivities": []})


if not hasattr(ApplicationAutoScalingResponse, "describe_scaling_activities"):
    ApplicationAutoScalingResponse.describe_scaling_activities = describe_scaling_activities  # type: ignore[attr-defined]

if __name__ == "__main__":
    main(sys.argv[1:])
