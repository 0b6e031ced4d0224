"""Gunicorn's entry point: `gunicorn -c app/gunicorn.conf.py app.wsgi:app`.

Gunicorn imports this module in each worker after the fork (no preload), so each worker
builds its own app and loads the model once.
"""

from app import create_app

app = create_app()
