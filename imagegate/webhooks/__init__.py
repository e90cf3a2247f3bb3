"""Webhooks: signed (Standard Webhooks) notifications of finished tasks, delivered with
retries through the same SSRF guard as reference-image fetches.

- `signing`: secrets, signatures, header sets, verification, webhook URL validation.
- `store`: the `webhook_deliveries` table (claim under a lease, outcomes, the owner's log).
- `sender`: the dispatcher loop that renders, signs and POSTs deliveries.
"""
