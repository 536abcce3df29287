"""Every action moto answers for SageMaker and SageMaker Runtime has a class in the twin's
table (carried out / recorded / refused), so a moto upgrade cannot add one that answers
silently with moto's static result; and the carried-out class is exactly the twin's handlers."""

from __future__ import annotations

import botocore.session
from moto.core.utils import camelcase_to_underscores
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from sagetwin.aws.actions import CARRIED_OUT, RECORDED, REFUSED, classify


def moto_actions(service: str, responses: type) -> set[str]:
    model = botocore.session.get_session().get_service_model(service)
    return {name for name in model.operation_names if callable(getattr(responses, camelcase_to_underscores(name),
                                                                       None))}


def test_every_action_moto_answers_has_exactly_one_class():
    answered = moto_actions("sagemaker", SageMakerResponse) | moto_actions("sagemaker-runtime",
                                                                            SageMakerRuntimeResponse)
    assert len(answered) > 100  # the lookup finds moto's handlers at all
    unclassified = answered - CARRIED_OUT - RECORDED - set(REFUSED)
    assert not unclassified, f"moto answers these, and the twin's table has no class for them: {sorted(unclassified)}"
    for action in answered:
        assert [action in CARRIED_OUT, action in RECORDED, action in REFUSED].count(True) == 1, action


def test_an_action_nobody_classified_is_refused():
    assert classify("CreateLabelingJob") == "refused" and classify("CreateAutoMLJobV2") == "refused"
    assert classify("CreateTrainingJob") == "carried out" and classify("AddTags") == "recorded"


def test_the_carried_out_actions_are_exactly_the_twins_handlers():
    from sagetwin.aws.endpoints import Endpoints
    from sagetwin.aws.experiments import Experiments
    from sagetwin.aws.training import TrainingJobs
    from sagetwin.aws.transform_jobs import TransformJobs

    handled = set()
    for kind in (TrainingJobs(None, None, "process", {}), Endpoints(None, None, "process", {}),
                 TransformJobs(None, None, "process", {})):
        handled |= set(kind.operations())
    handled |= set(Endpoints(None, None, "process", {}).runtime()) | set(Experiments(None).operations())
    assert handled == CARRIED_OUT
