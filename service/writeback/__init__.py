"""Write-back of targets into CRM fields: the push and its audit (push.py), its API shape."""
