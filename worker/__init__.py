"""Celery worker and beat: thin tasks over `core`."""
