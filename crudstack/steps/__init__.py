"""The console tutorial's steps, in its order. One module per step."""

from crudstack.steps.api import ApiStep
from crudstack.steps.deploy import DeployStep
from crudstack.steps.functions import FunctionsStep
from crudstack.steps.monitoring import MonitoringStep
from crudstack.steps.role import RoleStep
from crudstack.steps.table import TableStep

STEPS = (TableStep(), RoleStep(), FunctionsStep(), ApiStep(), DeployStep(), MonitoringStep())

__all__ = ["STEPS"]
