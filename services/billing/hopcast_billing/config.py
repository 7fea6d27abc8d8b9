"""Billing-only settings (the rest comes from the kernel's ServiceSettings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BillingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_", extra="ignore")

    # How often the purge job deletes organizations deleted more than BILLING_RETENTION_DAYS ago.
    purge_interval_s: float = Field(default=3600.0, gt=0)
