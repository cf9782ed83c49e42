"""The roles' filters (plugins/filter/boundaries.py): each documented beside it, each a thin call into module_utils."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.peerdiscovery.cluster_discovery.plugins.filter.boundaries import FilterModule

from tests.kubeconfigs import kubeconfig_text

FILTER_DIR = Path(__file__).resolve().parents[4] / "plugins" / "filter"
FILTERS = FilterModule().filters()


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_every_filter_is_documented_under_its_own_name(name: str) -> None:
    doc = yaml.safe_load((FILTER_DIR / f"{name}.yml").read_text())
    assert doc["DOCUMENTATION"]["name"] == name
    assert doc["DOCUMENTATION"]["short_description"]
    assert f"peerdiscovery.cluster_discovery.{name}" in doc["EXAMPLES"]
    assert "_value" in doc["RETURN"]


def test_the_member_kubeconfig_filter_fails_naming_the_fault() -> None:
    text = kubeconfig_text("cluster1", token="t")
    assert FILTERS["member_kubeconfig"](text) == text
    with pytest.raises(AnsibleFilterError, match="tokenFile"):
        FILTERS["member_kubeconfig"](text.replace("token: t", "tokenFile: /var/run/secrets/token"))


def test_the_node_api_filters_name_the_secret_and_make_the_header() -> None:
    assert FILTERS["node_api_token_secret"]("cluster1", "main") == "cluster1-main-api"
    secret = {"data": {"token": base64.b64encode(b"abc").decode()}}
    assert FILTERS["node_api_authorization"](secret) == "Bearer abc"
    assert FILTERS["node_api_authorization"]({}) == ""
