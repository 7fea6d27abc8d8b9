"""Billing's own metrics, beside the kernel's."""

from __future__ import annotations

from prometheus_client import Counter

CREDITS_DEBITED = Counter("hopcast_billing_credits_debited_total", "Credits taken by debits")
DEBITS_REJECTED = Counter("hopcast_billing_debits_rejected_total", "Debits refused", ["reason"])
