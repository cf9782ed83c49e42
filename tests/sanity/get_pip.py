"""Stand-in for the get-pip.py that ansible-test downloads from a host this project cannot reach.

ansible-test creates each sanity virtual environment without pip, then runs
its cached ``get_pip_<version>.py`` in it with pip's options and the packages
to install (``pip==<version>``, ...). This does the same from what every
Python ships and the package index: pip from ``ensurepip``, then ``pip install``
of those arguments. tests/sanity/run.py puts it where ansible-test looks.
"""

from __future__ import annotations

import ensurepip
import os
import subprocess
import sys

# get-pip.py's own options, which pip install does not take.
_GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

# ensurepip drops every PIP_* variable and pip's configuration files from os.environ for its own
# offline install; the install from the index needs them back (the index's CA bundle may be set there).
environment = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
arguments = [argument for argument in sys.argv[1:] if argument not in _GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *arguments], env=environment))
