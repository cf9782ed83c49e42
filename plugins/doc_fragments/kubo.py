# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""Documentation of the kubo connection options (spec: module_utils/args_common.py KUBO_ARG_SPEC).

Private to the collection: may change without notice.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - URL of the kubo node's RPC API (the C(Addresses.API) of its config), without C(/api/v0).
      - Every call is a C(POST) to C(<api_url>/api/v0/<command>).
    type: str
    default: http://127.0.0.1:5001
  api_authorization:
    description:
      - Value of the C(Authorization) header for a node whose C(API.Authorizations) protect its RPC API,
        for example C(Bearer <token>) or C(Basic <base64 user:password>).
    type: str
  timeout:
    description:
      - Seconds to wait for the node's answer to each RPC call.
    type: float
    default: 30
  connect_timeout:
    description:
      - Seconds to wait for a connection to the RPC API.
    type: float
    default: 5
  retries:
    description:
      - How many times a call is repeated after a connection error, with exponential backoff.
      - A call that is not idempotent is repeated only when the connection could not be opened.
      - HTTP errors answered by kubo are never repeated.
    type: int
    default: 2
requirements:
  - python >= 3.11
  - requests
"""
