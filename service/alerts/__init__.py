"""Pacing alerts and the weekly digest, posted to ISKPI_ALERT_WEBHOOK_URL after a sync pass.

- due.py: which alerts an instant makes due (the midday and end-of-day checks, the digest);
- figures.py: the numbers they report, from the KPI engine and the review sheets;
- messages.py: their text;
- outbox.py: their records: the claim that makes each one sent once, attempts, statuses;
- webhook.py: the POST;
- dispatch.py: after a sync pass, all of it, never raising into the sync.
"""
