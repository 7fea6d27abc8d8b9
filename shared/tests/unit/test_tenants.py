"""How a service takes the kernel's tenant projection into its dispatch map."""

from __future__ import annotations

import pytest

from hopcast_shared.dispatch import bind
from hopcast_shared.tenants import BRAND_EVENTS, ORGANIZATION_EVENTS, tenant_dispatch


def test_created_and_updated_share_one_handler_so_their_events_batch_together() -> None:
    handlers = bind(tenant_dispatch(), None)
    assert set(handlers) == set(ORGANIZATION_EVENTS + BRAND_EVENTS)
    assert handlers["BrandProfileCreated"] is handlers["BrandProfileUpdated"]
    assert handlers["BrandProfileDeleted"] is not handlers["BrandProfileRestored"]


def test_a_service_without_brands_handles_only_organizations() -> None:
    assert set(tenant_dispatch(brands=False)) == set(ORGANIZATION_EVENTS)


def test_a_step_after_an_event_the_projection_does_not_handle_is_refused() -> None:
    async def after(deps: object, ctx: object, data: object) -> None: ...

    with pytest.raises(ValueError, match="BrandProfileRestored"):
        tenant_dispatch(brands=False, after={"BrandProfileRestored": after})
