"""One router per resource: jobs, batches, health (with readiness and metrics)."""
