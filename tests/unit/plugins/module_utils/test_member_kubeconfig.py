"""The one kubeconfig shape members may publish and we accept (plugins/module_utils/member_kubeconfig.py).

Each refused case is an attack seen in review: a kubeconfig that runs a
command while it is loaded, sends a local token file to the member's server,
goes through a proxy, skips TLS checks, or exhausts the parser.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
import yaml
from ansible_collections.peerdiscovery.cluster_discovery.plugins.module_utils.member_kubeconfig import (
    KubeconfigError,
    from_dict,
    parse,
)

from tests.kubeconfigs import ca_pem, kubeconfig_dict, kubeconfig_text


def text_of(value: dict[str, Any]) -> str:
    return yaml.safe_dump(value, sort_keys=False)


def changed(edit: Any) -> dict[str, Any]:
    value = copy.deepcopy(kubeconfig_dict("member", token="abc"))
    edit(value)
    return value


def test_a_kubeconfig_of_the_shape_is_accepted_and_written_back_canonically() -> None:
    text = kubeconfig_text("member", token="abc.def", namespace="shared")
    checked = parse(text)
    assert checked.server == "https://member.example:6443"
    assert checked.token == "abc.def"
    assert checked.namespace == "shared"
    assert checked.ca_data == ca_pem()
    assert checked.to_text() == text
    # Flow style, other key order: the same kubeconfig, the same canonical text.
    assert parse(yaml.safe_dump(yaml.safe_load(text), default_flow_style=True)).to_text() == text


EXEC = {"apiVersion": "client.authentication.k8s.io/v1", "command": "touch", "args": ["/tmp/pwned"]}

REFUSED = {
    "an exec credential plugin": lambda v: v["users"][0]["user"].update(exec=EXEC),
    "an exec plugin instead of a token": lambda v: v["users"][0].update(user={"exec": EXEC}),
    "an auth-provider": lambda v: v["users"][0]["user"].update({"auth-provider": {"name": "oidc"}}),
    "a tokenFile": lambda v: v["users"][0].update(
        user={"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}
    ),
    "a client key file": lambda v: v["users"][0]["user"].update({"client-key": "/etc/kubernetes/pki/ca.key"}),
    "a client certificate": lambda v: v["users"][0]["user"].update({"client-certificate-data": "eA=="}),
    "basic auth": lambda v: v["users"][0]["user"].update(username="admin", password="x"),
    "impersonation": lambda v: v["users"][0]["user"].update(**{"as": "system:admin"}),
    "a CA file path": lambda v: v["clusters"][0]["cluster"].update({"certificate-authority": "/etc/ssl/ca.pem"}),
    "a proxy": lambda v: v["clusters"][0]["cluster"].update({"proxy-url": "http://127.0.0.1:3128"}),
    "insecure-skip-tls-verify": lambda v: v["clusters"][0]["cluster"].update({"insecure-skip-tls-verify": True}),
    "a plain http server": lambda v: v["clusters"][0]["cluster"].update(server="http://member.example"),
    "a server with user info": lambda v: v["clusters"][0]["cluster"].update(server="https://u:p@member.example"),
    "a server with a query": lambda v: v["clusters"][0]["cluster"].update(server="https://member.example/?x=1"),
    "no CA": lambda v: v["clusters"][0]["cluster"].pop("certificate-authority-data"),
    "a CA that is no certificate": lambda v: v["clusters"][0]["cluster"].update(
        {"certificate-authority-data": base64.b64encode(b"hello").decode()}
    ),
    "a private key in the CA bundle": lambda v: v["clusters"][0]["cluster"].update(
        {
            "certificate-authority-data": base64.b64encode(
                ca_pem() + b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            ).decode()
        }
    ),
    "two clusters": lambda v: v["clusters"].append(copy.deepcopy(v["clusters"][0])),
    "two users": lambda v: v["users"].append({"name": "other", "user": {"token": "x"}}),
    "no context namespace": lambda v: v["contexts"][0]["context"].pop("namespace"),
    "a context naming another user": lambda v: v["contexts"][0]["context"].update(user="other"),
    "extensions": lambda v: v.update(extensions=[{"name": "x", "extension": {}}]),
    "a token with a newline": lambda v: v["users"][0]["user"].update(token="abc\ndef"),
    "a current-context naming nothing": lambda v: v.update({"current-context": "elsewhere"}),
}


@pytest.mark.parametrize("attack", sorted(REFUSED))
def test_every_other_shape_is_refused(attack: str) -> None:
    value = changed(REFUSED[attack])
    with pytest.raises(KubeconfigError):
        from_dict(value)
    with pytest.raises(KubeconfigError):
        parse(text_of(value))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not: [yaml",
        "- a list",
        "a: &x [1]\nb: *x\n",  # aliases: the start of a billion laughs
        "[" * 5000 + "]" * 5000,
        "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 200)),
        "!!python/object/apply:os.system ['touch /tmp/pwned']",
        "x" * 60_000,
    ],
    ids=["empty", "broken", "list", "alias", "deep-flow", "deep-block", "python-tag", "oversized"],
)
def test_hostile_yaml_is_refused_with_a_kubeconfig_error(text: str) -> None:
    with pytest.raises(KubeconfigError):
        parse(text)


def test_the_refusal_names_what_is_in_the_way() -> None:
    with pytest.raises(KubeconfigError, match="exec"):
        from_dict(changed(REFUSED["an exec credential plugin"]))
