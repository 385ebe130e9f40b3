"""PUT /config on a running heat backend: a setting its site template has no parameter for is refused at
once, by the start check's own words (400, the running configuration kept), not at the next provisioning."""

from __future__ import annotations

import yaml

from scheduler_server.app import create_app
from scheduler_server.config import Settings, load_settings

from .conftest import pipeline_settings

NO_USER_DATA = """
heat_template_version: 2018-08-31
parameters:
  image: {type: string}
  flavor: {type: string}
resources:
  vm:
    type: OS::Nova::Server
    properties: {image: {get_param: image}, flavor: {get_param: flavor}}
outputs:
  address: {value: {get_attr: [vm, first_address]}}
"""


def test_put_config_refuses_a_setting_the_running_site_template_does_not_declare(sim, clouds_yaml, ssh_key, tmp_path):
    template = tmp_path / "site.yaml"
    template.write_text(NO_USER_DATA)
    pipelines = pipeline_settings(
        sim, clouds_yaml, ssh_key, provisioning="heat", heat_template_file=str(template), network_id=None
    )
    pipelines = pipelines.model_copy(
        update={"openstack": pipelines.openstack.model_copy(update={"auth_keyname": None})}
    )
    base = Settings(data_dir=tmp_path / "data", pipelines=pipelines.model_dump(mode="json")).model_dump(mode="json")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base))
    app = create_app(load_settings(config))
    service = app.extensions["pipelines"].service
    client = app.test_client()
    try:
        base["pipelines"]["openstack"]["user_data"] = "#cloud-config\npackages: [jq]\n"
        base["pipelines"]["max_active_pipelines"] = 7
        config.write_text(yaml.safe_dump(base))
        refused = client.put("/config")
        assert refused.status_code == 400, refused.json
        assert refused.json["content"] == (
            "configuration not reloaded, the running one is kept: "
            f"pipelines.openstack.heat_template_file {template}: declares no parameter 'user_data', "
            "so pipelines.openstack.user_data would be dropped: declare it in the template or unset that setting"
        )
        assert service.settings.openstack.user_data is None and service.backend.settings.max_active_pipelines != 7
        assert client.get("/config").json["content"]["pipelines"]["max_active_pipelines"] != 7

        template.write_text(NO_USER_DATA.replace("  flavor:", "  user_data: {type: string, hidden: true}\n  flavor:"))
        taken = client.put("/config")  # the template declares it now: taken
        assert taken.status_code == 200 and taken.json["content"]["restart_required"] == [], taken.json
        assert service.backend.settings.openstack.user_data.startswith("#cloud-config")
        assert "user_data" in service.backend.template.declared
    finally:
        service.close()
