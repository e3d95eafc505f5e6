"""LeanCore settings: every value comes from the environment (see README / .env.example), grouped by
concern, one module each; ``DJANGO_SETTINGS_MODULE`` is ``leancore.settings``, which gathers them.

- ``env``: the helpers that read the environment (``env_str``, ``env_int``…), BASE_DIR and DEBUG;
- ``security``: the secret key, hosts, origins, HTTPS, cookies, the field encryption key;
- ``project``: apps, middleware, URLs, templates, ASGI, time zone, static and media files;
- ``database``: DATABASE_URL and PostgreSQL's connection pool;
- ``cache_and_channels``: Redis for the cache and the channel layer;
- ``accounts``: passwords, tokens, invitations, password resets, sign-up credits;
- ``api``: REST framework, the OpenAPI schema, CORS, throttles;
- ``mail``: email;
- ``uploads``: request and upload sizes, the storage quota, text extraction;
- ``providers``: model providers and MCP servers;
- ``background``: turns, holds, maintenance, workers and webhook deliveries;
- ``observability``: logs and metrics.

A new setting goes into the module of its concern, read with the ``env`` helpers.
"""

from leancore.settings.accounts import *  # noqa: F403
from leancore.settings.api import *  # noqa: F403
from leancore.settings.background import *  # noqa: F403
from leancore.settings.cache_and_channels import *  # noqa: F403
from leancore.settings.database import *  # noqa: F403
from leancore.settings.env import *  # noqa: F403
from leancore.settings.mail import *  # noqa: F403
from leancore.settings.observability import *  # noqa: F403
from leancore.settings.project import *  # noqa: F403
from leancore.settings.providers import *  # noqa: F403
from leancore.settings.security import *  # noqa: F403
from leancore.settings.uploads import *  # noqa: F403
