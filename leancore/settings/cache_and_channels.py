"""Redis: the cache (throttles, idempotency) and the channel layer (WebSockets, a turn's events);
without REDIS_URL, both stay in the process."""

from __future__ import annotations

from leancore.settings.env import env_str

REDIS_URL = env_str("REDIS_URL")
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "")  # deployments sharing one Redis keep apart
if REDIS_URL:
    from redis.exceptions import ConnectionError as RedisConnectionError

    # A consumer waits on Redis with a 5 s blocking pop; the client's read timeout must outlast it
    # (redis' default is also 5 s, and the race closes idle sockets with 1011).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "core.layers.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": 10,
                        "socket_connect_timeout": 5,
                        "socket_keepalive": True,
                        "health_check_interval": 15,
                        # a connection left from before a Redis restart fails once: one retry on a
                        # new connection, at once (while Redis is down that one is refused as fast)
                        "retry_on_error": [RedisConnectionError],
                    }
                ]
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "core.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
            "OPTIONS": {
                "pool_class": "core.cache.SharedConnectionPool",
                "socket_connect_timeout": 1,  # a Redis that is gone fails fast (throttles fail open)
                "socket_timeout": 2,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "core.layers.ProcessChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
