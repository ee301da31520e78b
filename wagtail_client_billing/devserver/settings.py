"""The settings of the processes ``client_billing_dev`` starts: the project's own settings
module, then the patches of :func:`wagtail_client_billing.devserver.config.plan`.

Used only as ``DJANGO_SETTINGS_MODULE`` of those processes, with the ``CLIENT_BILLING_DEV``
environment variable the command sets (the base module's dotted path and the patches, as
JSON). Every upper-case name of the base module is copied, so the project's settings
apply unchanged except where a patch says otherwise.
"""

import importlib
import json
import os

from wagtail_client_billing.devserver.config import ENV, apply

_config = json.loads(os.environ[ENV])
_base = importlib.import_module(_config["settings"])
globals().update({name: getattr(_base, name) for name in dir(_base) if name.isupper()})
apply(globals(), _config["patches"])
