"""The dashboard: a web server on the head showing the cluster (overview with charts, actors,
objects and what pins them, workers and their logs, jobs) and serving the jobs API.

It runs as its own process (`python -m quanta.dashboard`), started by the head's launcher
(quanta/_private/services.py) unless include_dashboard is false, and exits with the head. Every
page and JSON endpoint requires the cluster token (auth.py): a login page sets an HttpOnly,
SameSite=Strict session cookie; scripts send `Authorization: Bearer <token>`.
"""

DEFAULT_PORT = 8265
