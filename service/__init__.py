"""The faces of avagent: CLI, HTTP API, Celery worker, media I/O, Settings and storage."""
