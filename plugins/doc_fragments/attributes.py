# Copyright: cluster-discovery contributors
# Apache License 2.0 (see LICENSE)
"""The attributes every module of the collection declares (as community.crypto's ``_attributes``).

Private to the collection: may change without notice.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description:
      - Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
  idempotent:
    description:
      - When run twice in a row with the same arguments, the second run reports C(changed=false)
        and changes nothing.
"""
