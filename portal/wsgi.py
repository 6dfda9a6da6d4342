import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

from django.conf import settings  # noqa: E402 - configured by get_wsgi_application

if settings.ATTEST_PREDICT_FAST_LANE:
    from portal.serving import PredictLane  # noqa: E402

    application = PredictLane(application)

try:  # only inside a uWSGI worker (ATTEST_WEB_SERVER=uwsgi)
    import uwsgi  # type: ignore[import-not-found]
except ImportError:
    uwsgi = None
if uwsgi is not None:
    from portal.uwsgi_http import UwsgiHttpGuard  # noqa: E402

    application = UwsgiHttpGuard(application, uwsgi)

if settings.ATTEST_APP_ACCESS_LOG:
    from portal.access_log import AppAccessLog  # noqa: E402

    application = AppAccessLog(application)

# Outermost: granian hands every request the process's environment variables too.
from portal.environ import RequestOnlyEnviron  # noqa: E402

application = RequestOnlyEnviron(application)
