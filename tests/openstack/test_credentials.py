"""Credentials: clouds.yaml, the seed's openrc file (read, never executed) and OS_* variables."""

from __future__ import annotations

import os

import pytest

from scheduler_server.pipelines.backend_errors import BackendConfigError
from scheduler_server.pipelines.clouds.openstack.auth import connect, connection_source, read_openrc
from scheduler_server.pipelines.clouds.openstack.settings import OpenStackSettings

HORIZON_OPENRC = """#!/usr/bin/env bash
# To use an OpenStack cloud you need to authenticate against the Identity
# service named keystone, which returns a **Token** and **Service Catalog**.
export OS_AUTH_URL={auth_url}
export OS_PROJECT_ID=0123456789abcdef
export OS_PROJECT_NAME="demo"
export OS_USER_DOMAIN_NAME="Default"
if [ -z "$OS_USER_DOMAIN_NAME" ]; then unset OS_USER_DOMAIN_NAME; fi
export OS_PROJECT_DOMAIN_ID="default"
if [ -z "$OS_PROJECT_DOMAIN_ID" ]; then unset OS_PROJECT_DOMAIN_ID; fi
unset OS_TENANT_ID
unset OS_TENANT_NAME
export OS_USERNAME="demo"
echo "Please enter your OpenStack Password for project $OS_PROJECT_NAME as user $OS_USERNAME: "
read -sr OS_PASSWORD_INPUT
export OS_PASSWORD=$OS_PASSWORD_INPUT
export OS_REGION_NAME="RegionOne"
if [ -z "$OS_REGION_NAME" ]; then unset OS_REGION_NAME; fi
export OS_INTERFACE=public
export OS_IDENTITY_API_VERSION=3
"""


def test_openrc_values_quotes_and_references(tmp_path):
    rc = tmp_path / "openrc"
    rc.write_text(
        "export OS_AUTH_URL='http://k/v3'\n"
        'export OS_USERNAME="alice smith"\n'
        "OS_PROJECT_NAME=proj  # trailing comment\n"
        "export OS_REGION_NAME=${REGION}\n"
        "export OS_PASSWORD='lit$eral'\n"
        "export NOT_OS=1\n"
    )
    values = read_openrc(rc, env={"REGION": "north"})
    assert values == {
        "OS_AUTH_URL": "http://k/v3",
        "OS_USERNAME": "alice smith",
        "OS_PROJECT_NAME": "proj",
        "OS_REGION_NAME": "north",
        "OS_PASSWORD": "lit$eral",
    }


def test_horizon_openrc_takes_the_prompted_password_from_the_environment(tmp_path):
    rc = tmp_path / "openrc"
    rc.write_text(HORIZON_OPENRC.format(auth_url="http://k/v3"))
    assert read_openrc(rc, env={"OS_PASSWORD": "s3cret"})["OS_PASSWORD"] == "s3cret"
    with pytest.raises(BackendConfigError, match="line 16.*OS_PASSWORD") as caught:
        read_openrc(rc, env={})
    assert "s3cret" not in str(caught.value)


def test_openrc_is_never_executed(tmp_path):
    canary = tmp_path / "ran"
    rc = tmp_path / "openrc"
    rc.write_text(f"touch {canary}\nexport OS_AUTH_URL=$(touch {canary}; echo http://x)\n")
    with pytest.raises(BackendConfigError, match="line 2.*command substitution"):
        read_openrc(rc, env={})
    assert not canary.exists()


def test_missing_openrc_and_missing_credentials_are_named(tmp_path):
    with pytest.raises(BackendConfigError, match="credentials_file: cannot read"):
        read_openrc(tmp_path / "nope")
    with pytest.raises(BackendConfigError, match="no OpenStack credentials"):
        connection_source(OpenStackSettings(), env={})


def test_precedence_cloud_then_openrc_then_os_cloud_then_env(tmp_path):
    rc = tmp_path / "openrc"
    rc.write_text("export OS_AUTH_URL=http://k/v3\nexport OS_USERNAME=u\n")
    env = {"OS_CLOUD": "fromenv", "OS_AUTH_URL": "http://env/v3"}
    assert connection_source(OpenStackSettings(cloud="named", credentials_file=rc), env) == ("cloud", "named")
    assert connection_source(OpenStackSettings(credentials_file=rc), env) == (
        "openrc",
        {"auth_url": "http://k/v3", "username": "u"},
    )
    assert connection_source(OpenStackSettings(), env) == ("cloud", "fromenv")
    assert connection_source(OpenStackSettings(), {"OS_AUTH_URL": "http://env/v3"}) == ("env", None)


@pytest.mark.parametrize("source", ["clouds_yaml", "openrc", "environment"])
def test_each_source_authenticates_against_the_simulator(sim, clouds_yaml, tmp_path, monkeypatch, source):
    for name in [n for n in os.environ if n.startswith("OS_")]:
        monkeypatch.delenv(name)
    if source == "clouds_yaml":
        settings = OpenStackSettings(cloud="sim", clouds_file=clouds_yaml)
    elif source == "openrc":
        rc = tmp_path / "openrc"
        rc.write_text(
            HORIZON_OPENRC.format(auth_url=sim.auth_url).replace("OS_PROJECT_ID=0123456789abcdef", "OS_PROJECT_ID=")
        )
        monkeypatch.setenv("OS_PASSWORD", sim.config.password)
        settings = OpenStackSettings(credentials_file=rc)
    else:
        for line in sim.openrc().splitlines():
            if line.startswith("export "):
                key, _, value = line[7:].partition("=")
                monkeypatch.setenv(key, value.strip('"'))
        settings = OpenStackSettings()
    conn = connect(settings)
    try:
        assert sorted(f.name for f in conn.compute.flavors()) == ["m1.large", "m1.medium", "m1.small", "m1.tiny"]
    finally:
        conn.close()


def test_unknown_cloud_name_is_a_config_error(clouds_yaml):
    with pytest.raises(BackendConfigError, match="cloud 'elsewhere'"):
        connect(OpenStackSettings(cloud="elsewhere", clouds_file=clouds_yaml))
