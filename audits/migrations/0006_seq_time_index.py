"""An index on (seq, time) for event lists filtered by a time window.

The list is ordered by seq; a window that ends in the past (``until``) made
PostgreSQL walk the seq index back from the newest event, reading every newer
row from the heap to test its time (165 ms for a window at the start of 1M
events). With time in the index, ``audit_event_queryset`` first finds the
window's last seq with an index-only scan and starts the page there
(docs/performance.md, "Audit").

Plain SQL with no model state: the index is a query-plan detail the ORM never
names. ``CREATE INDEX`` (not CONCURRENTLY) holds off appends while it builds,
about a second per million events.
"""

from django.db import migrations

INDEX = "audit_seq_time"


class Migration(migrations.Migration):
    dependencies = [("audits", "0005_inference_actions")]

    operations = [
        migrations.RunSQL(
            sql=f"CREATE INDEX IF NOT EXISTS {INDEX} ON audits_auditevent (seq, time)",
            reverse_sql=f"DROP INDEX IF EXISTS {INDEX}",
        ),
    ]
