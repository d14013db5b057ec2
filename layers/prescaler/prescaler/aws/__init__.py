"""AWS adapters: each takes its boto3 client and maps ``ClientError`` codes to domain outcomes.

- :mod:`prescaler.aws.clients`: the one cached client factory (botocore retry config).
- :mod:`prescaler.aws.cloudwatch`: ``Invocations`` history reader, GPU / latency reads, PutMetricData.
- :mod:`prescaler.aws.autoscaling`: scalable target, MinCapacity, scaling activities and lead time.
- :mod:`prescaler.aws.sagemaker`: endpoint status, instance type, prompt scale-in.
- :mod:`prescaler.aws.ledger`: the decision ledger (DynamoDB, conditional writes).
"""
