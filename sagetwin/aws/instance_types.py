"""Instance types as SageMaker accepts them: the enums of botocore's SageMaker service model
(``TrainingInstanceType``, ``ProductionVariantInstanceType``, ``TransformInstanceType``), which the
service validates requests against and which botocore updates as AWS adds families (``ml.g5``,
``ml.g6``, ``ml.p5``, ``ml.inf2``, ``ml.trn1``, ...). The twin checks every request against the
model (``constraints``: a misspelt type gets the service's ``ValidationException``); moto's own
endpoint-config check, an older list of its own, is set aside here."""

from __future__ import annotations


def set_aside_motos_own_check() -> None:
    """moto refuses endpoint configs whose instance type is missing from its own list (e.g.
    ``ml.g5.2xlarge``, which AWS accepts): the request has passed the service model's enum by
    the time it reaches moto."""
    from moto.sagemaker.models import FakeEndpointConfig

    FakeEndpointConfig.validate_instance_type = lambda self, instance_type: None  # type: ignore[method-assign]
