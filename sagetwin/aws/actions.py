"""Every SageMaker and SageMaker Runtime action the twin answers, in one table.

Each action is in exactly one class:
- **carried out**: a twin handler does what the service does (runs the job, serves the model);
- **recorded**: the service itself only keeps a record (tags, experiments, models, descriptions),
  so moto's record is the service's answer;
- **refused**: it would have to run something the twin does not run; the caller gets
  ``UnsupportedOperation`` naming the action and where it does run — never moto's static result.

An action in no class (new in a moto or botocore upgrade) is refused too, so nothing is
answered silently; a test lists moto's actions and fails on any that has no class here.
"""

from __future__ import annotations

import json

from sagetwin.aws.replies import Reply, service_error

CARRIED_OUT = frozenset({
    "CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob", "ListTrainingJobs",
    "CreateEndpointConfig", "CreateEndpoint", "DescribeEndpoint", "DeleteEndpoint", "ListEndpoints",
    "CreateTransformJob", "DescribeTransformJob", "StopTransformJob", "ListTransformJobs",
    "DeleteExperiment", "DeleteTrial", "DeleteTrialComponent",  # records, deleted in the service's order
    # SageMaker Runtime
    "InvokeEndpoint", "InvokeEndpointAsync", "InvokeEndpointWithResponseStream",
})

RECORDED = frozenset({
    "AddTags", "DeleteTags", "ListTags",
    "CreateModel", "DescribeModel", "DeleteModel", "ListModels",
    "DescribeEndpointConfig", "DeleteEndpointConfig", "ListEndpointConfigs",
    "CreateExperiment", "DescribeExperiment", "ListExperiments",
    "CreateTrial", "DescribeTrial", "ListTrials",
    "CreateTrialComponent", "DescribeTrialComponent", "ListTrialComponents",
    "UpdateTrialComponent", "AssociateTrialComponent", "DisassociateTrialComponent",
    "CreateModelPackage", "DescribeModelPackage", "UpdateModelPackage", "ListModelPackages",
    "CreateModelPackageGroup", "DescribeModelPackageGroup", "ListModelPackageGroups",
    "CreateModelCard", "DescribeModelCard", "UpdateModelCard", "DeleteModelCard", "ListModelCards",
    "ListModelCardVersions",
    "CreateNotebookInstanceLifecycleConfig", "DescribeNotebookInstanceLifecycleConfig",
    "DeleteNotebookInstanceLifecycleConfig",
    # monitoring job definitions are records; only a monitoring schedule (not emulated) runs them
    "CreateDataQualityJobDefinition", "DescribeDataQualityJobDefinition", "DeleteDataQualityJobDefinition",
    "ListDataQualityJobDefinitions",
    "CreateModelBiasJobDefinition", "DescribeModelBiasJobDefinition", "DeleteModelBiasJobDefinition",
    "ListModelBiasJobDefinitions",
    "CreateModelExplainabilityJobDefinition", "DescribeModelExplainabilityJobDefinition",
    "DeleteModelExplainabilityJobDefinition", "ListModelExplainabilityJobDefinitions",
    "CreateModelQualityJobDefinition", "DescribeModelQualityJobDefinition", "DeleteModelQualityJobDefinition",
    "ListModelQualityJobDefinitions",
    # the resources below cannot be created through the twin (see REFUSED): these find nothing, as AWS would
    "DescribeProcessingJob", "ListProcessingJobs", "StopProcessingJob",
    "DescribeHyperParameterTuningJob", "ListHyperParameterTuningJobs", "DeleteHyperParameterTuningJob",
    "DescribePipeline", "ListPipelines", "DeletePipeline", "DescribePipelineExecution", "ListPipelineExecutions",
    "DescribePipelineDefinitionForExecution", "ListPipelineParametersForExecution",
    "DescribeCompilationJob", "ListCompilationJobs", "DeleteCompilationJob",
    "DescribeCluster", "DescribeClusterNode", "ListClusters", "ListClusterNodes", "DeleteCluster",
    "DescribeDomain", "ListDomains", "DeleteDomain",
    "DescribeNotebookInstance", "ListNotebookInstances", "StopNotebookInstance", "DeleteNotebookInstance",
    "DescribeFeatureGroup",
    "DescribeAutoMLJobV2", "ListAutoMLJobs", "StopAutoMLJob",
})

_ON_SAGEMAKER = "run it on SageMaker itself (sagetwin's sagemaker backend, or your AWS account)"
REFUSED: dict[str, str] = {
    "CreateProcessingJob": "processing jobs are not run offline; " + _ON_SAGEMAKER,
    "CreateHyperParameterTuningJob": "tuning jobs are not run offline; run the training jobs one by one through "
                                     "the twin (Estimator.fit with each set of hyperparameters), or " + _ON_SAGEMAKER,
    "CreatePipeline": "pipelines are not run offline; run their steps' SDK calls through the twin, or " + _ON_SAGEMAKER,
    "UpdatePipeline": "pipelines are not run offline; " + _ON_SAGEMAKER,
    "StartPipelineExecution": "pipelines are not run offline; " + _ON_SAGEMAKER,
    "CreateCompilationJob": "SageMaker Neo compilation is not emulated; " + _ON_SAGEMAKER,
    "CreateCluster": "HyperPod clusters are not emulated; " + _ON_SAGEMAKER,
    "CreateDomain": "SageMaker Studio domains are not emulated; " + _ON_SAGEMAKER,
    "CreateNotebookInstance": "notebook instances are not emulated; run your notebook here with `sagetwin exec -- "
                              "jupyter lab`, or " + _ON_SAGEMAKER,
    "StartNotebookInstance": "notebook instances are not emulated; " + _ON_SAGEMAKER,
    "CreateFeatureGroup": "Feature Store is not emulated; " + _ON_SAGEMAKER,
    "CreateAutoMLJobV2": "Autopilot (AutoML) jobs are not run offline; " + _ON_SAGEMAKER,
    "UpdateEndpointWeightsAndCapacities": "the twin serves one instance of one variant per endpoint and does not "
                                          "change it in place; delete and create the endpoint, or " + _ON_SAGEMAKER,
    "Search": "Search over the twin's live jobs is not emulated (its records would show a static status); use the "
              "List*/Describe* calls, or " + _ON_SAGEMAKER,
}

assert not (CARRIED_OUT & RECORDED) and not (set(REFUSED) & (CARRIED_OUT | RECORDED)), "one class per action"


def classify(action: str) -> str:
    """``carried out``, ``recorded`` or ``refused`` (also for an action this table has not met)."""
    if action in CARRIED_OUT:
        return "carried out"
    if action in RECORDED:
        return "recorded"
    return "refused"


def refusal(action: str, *, runtime: bool = False) -> Reply:
    """The answer to a refused action: a 400 the SDK raises as ``ClientError`` with the action, the
    reason and where it does run, before anything is recorded."""
    why = REFUSED.get(action, f"{action} is not emulated by sagetwin's AWS twin; " + _ON_SAGEMAKER)
    message = f"sagetwin: {action} is not carried out offline: {why}."
    if runtime:  # the runtime's REST-JSON protocol reads the code from this header
        return Reply(400, json.dumps({"message": message}).encode(),
                     {"Content-Type": "application/json", "x-amzn-ErrorType": "UnsupportedOperation"})
    return service_error("UnsupportedOperation", message)
