"""The WSGI application gunicorn serves (deploy/gunicorn.conf.py) and runserver loads.

In the embedded shape (no broker) it also starts the in-process scheduler
(portal/scheduler.py), so anchoring, checkpoints, purges, batch resumption and
monitoring run without Celery beat.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

from portal import scheduler  # noqa: E402  (after Django is set up)

scheduler.start()
