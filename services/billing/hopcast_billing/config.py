"""Billing-only settings (the rest comes from the kernel's ServiceSettings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hopcast_billing.domain.pricing import Prices


class BillingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BILLING_", extra="ignore")

    # How often the purge job deletes organizations deleted more than BILLING_RETENTION_DAYS ago.
    purge_interval_s: float = Field(default=3600.0, gt=0)


class PriceSettings(BaseSettings):
    """Prices through BILLING_PRICE_* variables; the defaults are the contract's (domain/pricing.py)."""

    model_config = SettingsConfigDict(env_prefix="BILLING_PRICE_", extra="ignore", frozen=True)

    generate: int = Field(default=Prices.generate, ge=0)
    publish_per_platform: int = Field(default=Prices.publish_per_platform, ge=0)
    publish_cap_platforms: int = Field(default=Prices.publish_cap_platforms, ge=1)
    publish_cap: int = Field(default=Prices.publish_cap, ge=0)

    def prices(self) -> Prices:
        return Prices(self.generate, self.publish_per_platform, self.publish_cap_platforms, self.publish_cap)
