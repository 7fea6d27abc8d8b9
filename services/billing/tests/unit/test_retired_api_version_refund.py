"""A platform that failed because its API version was retired (PostPublishFailed
API_VERSION_RETIRED, the publisher's own fault, not the customer's) is refunded its share like
any other failed platform."""

from __future__ import annotations

import uuid

from hopcast_billing.domain.debits import Balance
from hopcast_billing.domain.pricing import Prices
from hopcast_billing.service_layer.handlers import (
    BillingDeps,
    credits_granted,
    debit_for_pending_posts,
    refund_failed_platform,
)

from .test_debit_and_refund_handlers import ORG, FakeLedger, _ctx, _emitted, _post


async def test_a_platform_failed_api_version_retired_is_refunded() -> None:
    ledger = FakeLedger()
    deps = BillingDeps(prices=Prices(), ledger=lambda conn: ledger)
    grant, drafted = _ctx("CreditsGranted", grant_id=str(uuid.uuid4()), amount=10), _post(["LINKEDIN", "BLUESKY"])
    await credits_granted(deps, *grant)
    await debit_for_pending_posts(deps, [drafted])
    assert ledger.balances[ORG] == Balance(0, 7)  # GENERATE 1, PUBLISH 2
    post = drafted[1]

    failed = _ctx(
        "PostPublishFailed",
        pending_post_id=str(post.pending_post_id),
        run_id=str(post.run_id),
        platform="LINKEDIN",
        reason="API_VERSION_RETIRED",
        detail="LINKEDIN answered 426 (NONEXISTENT_VERSION): API version 202506 is retired",
    )
    assert failed[1].reason == "API_VERSION_RETIRED"
    await refund_failed_platform(deps, *failed)

    [(kind, refund), _usage] = _emitted(failed[0])
    assert kind == "CreditsRefunded" and refund["amount"] == 1 and refund["reason"] == "PUBLISH_FAILED"
    assert ledger.balances[ORG] == Balance(0, 8)
