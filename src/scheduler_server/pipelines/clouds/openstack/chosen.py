"""The class registered as the ``openstack`` backend: it builds the one ``provisioning`` names,
``OpenStackBackend`` (nova: an instance is a server) or ``HeatBackend`` (heat: a stack)."""

from __future__ import annotations

from scheduler_server.pipelines.clouds.openstack.backend import OpenStackBackend
from scheduler_server.pipelines.clouds.openstack.heat_backend import HeatBackend


class ChosenOpenStackBackend(OpenStackBackend):
    def __new__(cls, settings, **kwargs):
        chosen = HeatBackend if settings.openstack.provisioning == "heat" else OpenStackBackend
        backend = object.__new__(chosen)
        backend.__init__(settings, **kwargs)  # not a ChosenOpenStackBackend: Python does not call it again
        return backend
