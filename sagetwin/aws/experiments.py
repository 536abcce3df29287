"""Experiments, trials and trial components are records, as on AWS — with the service's order of
deletion kept: an experiment goes only once its trials are deleted, a trial once its components
are, a component once no trial holds it (moto deletes them regardless)."""

from __future__ import annotations

from typing import Any

from sagetwin.aws.replies import Reply, service_error
from sagetwin.aws.wsgi import Call


class Experiments:
    def __init__(self, clients: Any) -> None:
        self.clients = clients

    def operations(self) -> dict[str, Any]:
        return {"DeleteExperiment": self.delete_experiment, "DeleteTrial": self.delete_trial,
                "DeleteTrialComponent": self.delete_trial_component}

    def delete_experiment(self, call: Call) -> Reply:
        name = call.params().get("ExperimentName", "")
        trials = self.clients.sagemaker.list_trials(ExperimentName=name).get("TrialSummaries", [])
        if trials:
            return service_error("ValidationException", f"Experiment {name} still has {len(trials)} trial(s): all "
                                 "trials associated with the experiment must be deleted first.")
        return call.pass_to_moto()

    def delete_trial(self, call: Call) -> Reply:
        name = call.params().get("TrialName", "")
        components = self.clients.sagemaker.list_trial_components(TrialName=name).get("TrialComponentSummaries", [])
        if components:
            return service_error("ValidationException", f"Trial {name} still has {len(components)} trial "
                                 "component(s): all trial components that make up the trial must be deleted first.")
        return call.pass_to_moto()

    def delete_trial_component(self, call: Call) -> Reply:
        name = call.params().get("TrialComponentName", "")
        for page in self.clients.sagemaker.get_paginator("list_trials").paginate(TrialComponentName=name):
            if page.get("TrialSummaries"):
                return service_error("ValidationException", f"Trial component {name} is associated with a trial: "
                                     "disassociate it from all trials before deleting it.")
        return call.pass_to_moto()
