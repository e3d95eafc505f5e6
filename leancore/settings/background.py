"""Turns and background work: holds, leases, maintenance, the queue, replay, the workers and webhook
deliveries."""

from __future__ import annotations

from datetime import timedelta

from leancore.settings.env import env_bool, env_int, env_str

# "webhooks": webhook deliveries, served on threads of their own (leancore.worker)
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "webhooks"]}}
# Run the worker as a thread of the server process (single-process quick start without Redis).
EMBEDDED_WORKER = env_bool("EMBEDDED_WORKER", False)

# A hold of a call made outside any turn (the specialist wizard's, within one request) older than
# this is treated as abandoned (a crashed process) and released. A turn's holds last while the turn
# is queued or running, however long; they go with it when it ends or its process is lost.
RESERVATION_TTL = timedelta(seconds=env_int("RESERVATION_TTL_SECONDS", 15 * 60))
# A running turn renews its lease every TURN_HEARTBEAT_SECONDS; one whose lease is older than
# TURN_LEASE_SECONDS lost its process (a killed worker or server): maintenance, which runs every
# MAINTENANCE_INTERVAL_SECONDS, fails it, releases its holds and tells its WebSocket watchers.
TURN_HEARTBEAT_SECONDS = float(env_str("TURN_HEARTBEAT_SECONDS", "10"))
TURN_LEASE_SECONDS = float(env_str("TURN_LEASE_SECONDS", "60"))
MAINTENANCE_INTERVAL_SECONDS = float(env_str("MAINTENANCE_INTERVAL_SECONDS", "60"))
# A queued turn (an async chat turn, a task run) that no worker started within TURN_QUEUE_TIMEOUT
# seconds fails with `queue_timeout` and costs nothing (its hold is given back): the worker checks
# when it picks the turn up, and maintenance fails those still waiting.
TURN_QUEUE_TIMEOUT = float(env_str("TURN_QUEUE_TIMEOUT", "3600"))
# Every event of a turn is kept (Redis with REDIS_URL, else in the process) from its start until
# STREAM_REPLAY_SECONDS after it ends: GET /api/chat/messages/{id}/events and the WebSocket's
# `resume` frame replay it; later, 410 `events_expired` (the session's messages hold the result).
STREAM_REPLAY_SECONDS = max(1, env_int("STREAM_REPLAY_SECONDS", 600))
# How many turns one worker process (`manage.py db_worker`) runs at once; while other orgs' turns
# wait, one org's turns take at most half of them (at least one).
WORKER_TURN_CONCURRENCY = max(1, env_int("WORKER_TURN_CONCURRENCY", 4))
# Webhook deliveries: a worker process makes WEBHOOK_WORKER_CONCURRENCY attempts at once, on threads of
# their own (never a turn's), one org at most half of them. An attempt that gets no 2xx answer within
# WEBHOOK_TIMEOUT_SECONDS (the name lookup included) fails and is retried later; of an answer only its
# status and the first WEBHOOK_RESPONSE_PREVIEW_BYTES (for the delivery log) are read.
WEBHOOK_WORKER_CONCURRENCY = max(1, env_int("WEBHOOK_WORKER_CONCURRENCY", 4))
WEBHOOK_TIMEOUT_SECONDS = float(env_str("WEBHOOK_TIMEOUT_SECONDS", "10"))
WEBHOOK_RESPONSE_PREVIEW_BYTES = max(0, env_int("WEBHOOK_RESPONSE_PREVIEW_BYTES", 1024))
# Events (their bodies and delivery logs) are kept this many days, then maintenance drops them.
WEBHOOK_RETENTION_DAYS = max(1, env_int("WEBHOOK_RETENTION_DAYS", 30))
