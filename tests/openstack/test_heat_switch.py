"""Switching ``provisioning`` nova -> heat on a running cloud: the heat backend still finds, reads
and deletes the plain servers the nova backend made, so reconciliation leaks nothing; the key is a
restart key (a reload keeps the running backend)."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import yaml

from devtools.openstack_sim import SimConfig, Simulator
from scheduler_server.config import Settings
from scheduler_server.pipelines.backend_errors import BackendConfigError, ProvisionError
from scheduler_server.pipelines.clouds.backend import create_backend
from scheduler_server.pipelines.clouds.openstack.calls import CloudAPIError
from scheduler_server.pipelines.clouds.openstack.heat_backend import NO_HEAT
from scheduler_server.pipelines.service import PipelineService

from .conftest import assert_nothing_left, pipeline_settings, wait_for

NO_NET = {"network_id": None, "auth_keyname": None}  # a template declaring neither network nor key_name


def test_heat_backend_lists_reads_and_deletes_our_plain_servers(sim, make_backend):
    nova = make_backend(provisioning="nova")
    plain = nova.wait_until_reachable(nova.provision("pipeline-n-1"))
    heat = make_backend(provisioning="heat")
    stack = heat.wait_until_reachable(heat.provision("pipeline-h-1"))
    listed = {i.id: i for i in heat.list_instances()}
    assert set(listed) == {plain.id, stack.id}  # the stack's own server is not listed again
    assert listed[plain.id].tagged and not listed[plain.id].extra.get("stack")
    found = heat.get_instance(plain.id)
    assert found is not None and found.state == "active" and found.name == "pipeline-n-1"
    heat.destroy(listed[plain.id])  # as reconciliation does with an untracked one
    wait_for(lambda: heat.get_instance(plain.id) is None, what="the plain server to go")
    assert [i.id for i in heat.list_instances()] == [stack.id]
    heat.destroy(stack)
    assert_nothing_left(sim)


def test_provisioning_is_a_restart_key(sim, make_backend, tmp_path):
    backend = make_backend(provisioning="nova")
    settings = backend.settings
    service = PipelineService.__new__(PipelineService)  # reconfigure's state only: no store, no threads
    service.settings, service.backend, service.data_path = settings, backend, tmp_path

    class Wake:
        def wake(self):
            pass

    service.dispatcher = Wake()
    fresh = settings.model_copy(update={"openstack": settings.openstack.model_copy(update={"provisioning": "heat"})})
    fresh = fresh.model_copy(update={"max_connection_retries": 3})
    assert service.reconfigure(fresh, tmp_path) == ["openstack.provisioning"]
    assert service.settings.openstack.provisioning == "nova"  # kept: the running backend makes servers
    assert service.settings.max_connection_retries == 3  # the rest is taken


def test_a_cloud_without_heat_is_one_clear_reason(ssh_key, tmp_path, caplog):
    sim = Simulator(SimConfig(boot_delay=0.1, orchestration=False)).start()
    try:
        path = tmp_path / "no-heat.yaml"
        path.write_text(yaml.safe_dump(sim.clouds_yaml("sim")))
        settings = pipeline_settings(sim, path, ssh_key, provisioning="heat")
        backend = create_backend(settings, scheduler_id="sched-test", data_dir=tmp_path)
        with caplog.at_level(logging.ERROR):
            backend._warm_up()  # what adopt() runs in its thread at start
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [f"openstack: {NO_HEAT}"]
        with pytest.raises(ProvisionError) as raised:
            backend.provision("pipeline-h-n")
        assert str(raised.value) == NO_HEAT and not sim.cloud.servers
        backend.close()
    finally:
        sim.stop()


def test_security_group_with_an_own_group_warns_at_start(make_backend, caplog):
    with caplog.at_level(logging.WARNING):
        make_backend(provisioning="heat", security_group="default", heat_create_security_group=True)
    assert any("security_group is not used" in r.getMessage() for r in caplog.records)


def test_heat_parameters_are_masked_in_get_config_and_user_data_must_be_hidden(tmp_path, make_backend):
    settings = Settings(pipelines={"backend": "openstack", "openstack": {"heat_parameters": {"db_password": "s3cret"}}})
    shown = settings.public_dict()["pipelines"]["openstack"]["heat_parameters"]
    assert shown == {"db_password": "**********"} and "s3cret" not in json.dumps(settings.public_dict())
    assert settings.pipelines.openstack.heat_parameters == {"db_password": "s3cret"}  # what the stacks get
    template = tmp_path / "shown.yaml"
    template.write_text(
        "heat_template_version: 2018-08-31\nparameters:\n  user_data: {type: string, default: ''}\n"
        "  image: {type: string}\n  flavor: {type: string}\n"
        "resources:\n  vm:\n    type: OS::Nova::Server\n"
        "    properties: {image: {get_param: image}, flavor: {get_param: flavor}, user_data: {get_param: user_data}}\n"
        "outputs:\n  address: {value: {get_attr: [vm, first_address]}}\n"
    )
    with pytest.raises(BackendConfigError, match="parameter 'user_data' must be declared with hidden: true"):
        make_backend(provisioning="heat", heat_template_file=str(template), user_data="#cloud-config\n", **NO_NET)
    backend = make_backend(provisioning="heat", heat_template_file=str(template), **NO_NET)  # nothing to hide
    assert "user_data" in backend.template.declared


def test_nova_backend_says_loudly_that_live_stacks_need_heat(make_backend, caplog):
    heat = make_backend(provisioning="heat")
    stack = heat.provision("pipeline-h-d")
    nova = make_backend(provisioning="nova")
    with caplog.at_level(logging.ERROR):
        nova.adopt([stack])
    for thread in threading.enumerate():
        if thread.name == "openstack-warm-up":  # adopt's warm-up: done before the simulator stops
            thread.join(15)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("1 live instance(s) are Heat stacks (pipeline-h-d)" in m and "drain" in m for m in errors), errors
    heat.destroy(stack)


@pytest.mark.parametrize("provisioning", ["nova", "heat"])
def test_a_failed_connection_at_create_frees_the_boot_slot(make_backend, monkeypatch, provisioning):
    backend = make_backend(provisioning=provisioning, max_parallel_provisioning=1)
    backend.resolved()  # looked up: provision's next use of the connection is the create
    if provisioning == "heat":
        backend._check_heat()  # the catalogue too
    working = backend.connection

    def down():
        raise CloudAPIError("connect: the cloud is down")

    monkeypatch.setattr(backend, "connection", down)
    with pytest.raises(ProvisionError, match="the cloud is down"):
        backend.provision("pipeline-c-1")
    monkeypatch.setattr(backend, "connection", working)
    done = {}
    thread = threading.Thread(target=lambda: done.update(info=backend.provision("pipeline-c-2")), daemon=True)
    thread.start()
    thread.join(15)
    assert "info" in done, "the one boot slot was not given back"
    backend.destroy(done["info"])
