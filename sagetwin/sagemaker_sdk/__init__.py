"""The SageMaker Python SDK v2 and boto3 plumbing that the SDK-based backends (local, sagemaker)
share: not a backend itself, and not the AWS twin (``sagetwin.aws``)."""
