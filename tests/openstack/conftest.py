"""Fixtures for the OpenStack backend: a simulator on loopback, SSH keys, backends wired to it."""

from __future__ import annotations

import getpass
from pathlib import Path

import openstack
import pytest
import yaml

from devtools.openstack_sim import SimConfig, Simulator
from devtools.sshd import generate_keypair
from scheduler_server.pipelines.clouds.backend import create_backend
from scheduler_server.pipelines.settings import PipelineSettings
from tests.waiting import wait_until

from .harness import Service

KEYPAIR = "scheduler"
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items):
    # openstacksdk announces its own future API changes (ignore_missing defaults, influxdb) on every call.
    for item in items:
        if Path(str(item.fspath)).parent == HERE:
            item.add_marker(pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"))
            item.add_marker(pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"))


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05, what: str = "condition"):
    return wait_until(predicate, timeout, interval, message=what)


def sdk_connection(sim: Simulator, **kwargs):
    """The real openstacksdk, configured the way a user would, against the simulator."""
    cfg = sim.config
    return openstack.connect(
        auth_url=sim.auth_url,
        username=cfg.username,
        password=cfg.password,
        project_name=cfg.project_name,
        user_domain_name="Default",
        project_domain_name="Default",
        region_name=cfg.region,
        load_yaml_config=False,
        load_envvars=False,
        **kwargs,
    )


def leftovers(sim: Simulator) -> dict:
    with sim.cloud.lock:
        return {
            "servers": [s.name for s in sim.cloud.servers.values()],
            "floating_ips": [f.floating_ip_address for f in sim.cloud.floating_ips.values()],
        }


def assert_nothing_left(sim: Simulator, timeout: float = 10.0) -> None:
    wait_for(
        lambda: leftovers(sim) == {"servers": [], "floating_ips": []},
        timeout,
        what=f"an empty cloud, have {leftovers(sim)}",
    )


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory) -> Path:
    return generate_keypair(tmp_path_factory.mktemp("keys") / "id_ed25519")


@pytest.fixture
def sim(ssh_key):
    simulator = Simulator(SimConfig(boot_delay=0.3, delete_delay=0.05)).start()
    simulator.cloud.import_keypair(KEYPAIR, ssh_key.with_suffix(".pub").read_text())
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def conn(sim):
    connection = sdk_connection(sim)
    yield connection
    connection.close()


@pytest.fixture
def clouds_yaml(tmp_path, sim) -> Path:
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump(sim.clouds_yaml("sim")))
    return path


def pipeline_settings(sim: Simulator, clouds_yaml: Path, ssh_key: Path, **openstack_overrides) -> PipelineSettings:
    openstack_cfg = {
        "cloud": "sim",
        "clouds_file": str(clouds_yaml),
        "image_id": "ubuntu-22.04",
        "flavor": "m1.small",
        "network_id": "private",
        "auth_keyname": KEYPAIR,
        "ssh_port": sim.config.ssh_port,
        "status_poll_interval": 0.05,
        "boot_timeout": 30,
        "api_timeout": 5,
    }
    openstack_cfg.update(openstack_overrides)
    return PipelineSettings(
        backend="openstack",
        ssh_user=getpass.getuser(),
        ssh_key_file=ssh_key,
        max_connection_retries=10,
        connection_retry_interval=0.5,
        openstack=openstack_cfg,
    )


@pytest.fixture
def make_backend(sim, clouds_yaml, ssh_key, tmp_path):
    made = []

    def factory(scheduler_id: str = "sched-test", **openstack_overrides):
        settings = pipeline_settings(sim, clouds_yaml, ssh_key, **openstack_overrides)
        backend = create_backend(settings, scheduler_id=scheduler_id, data_dir=tmp_path)
        made.append(backend)
        return backend

    yield factory
    for backend in made:
        backend.close()


@pytest.fixture
def services():
    """Start ``serve`` processes on the simulator (harness.Service); all are stopped after the test."""
    started = []

    def start(config, log):
        service = Service(config, log).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
