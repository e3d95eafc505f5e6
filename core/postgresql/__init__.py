"""Django's PostgreSQL backend, with the pool's waits timed (``leancore_db_pool_wait_seconds``)."""
