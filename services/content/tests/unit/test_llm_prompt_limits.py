"""The LLM writer is told each platform's limit as that platform's own rule counts it (X's
weights, Mastodon's links, Bluesky's graphemes and bytes, Instagram's hashtags), the rules its
drafts are then checked by, not one plain character count."""

from __future__ import annotations

import json
import uuid

import httpx

from hopcast_content.adapters.generators import LlmGenerator
from hopcast_content.domain.drafting import BrandVoice, DraftRequest, MaterialText
from hopcast_shared.contract import Angle, Platform
from hopcast_shared.contract.examples import example_data
from hopcast_shared.text_rules import RULES
from hopcast_shared.text_rules.descriptions import describe
from hopcast_shared.text_rules.mastodon import MastodonRule

PROFILE = example_data("BrandProfileCreated")
PLATFORMS = (Platform.TWITTER, Platform.MASTODON, Platform.BLUESKY, Platform.INSTAGRAM, Platform.LINKEDIN)


async def _prompt_for(platforms: tuple[Platform, ...]) -> str:
    sent: list[str] = []

    def handle(req: httpx.Request) -> httpx.Response:
        sent.append(json.loads(req.content)["messages"][1]["content"])
        return httpx.Response(200, json={"choices": [{"message": {"content": '{"content": "Fresh roast"}'}}]})

    material = MaterialText(uuid.uuid4(), "TEXT", "Tuesdays", "We roast every Tuesday.", (), None)
    request = DraftRequest(
        material, BrandVoice.from_profile(PROFILE["name"], PROFILE), platforms, Angle.STORYTELLING, "because"
    )
    await LlmGenerator("http://llm.test/v1", "m", transport=httpx.MockTransport(handle)).draft(request)
    [prompt] = sent
    return prompt


async def test_the_prompt_states_each_platform_limit_by_its_own_rule() -> None:
    prompt = await _prompt_for(PLATFORMS)
    assert "TWITTER: at most 280 weighted characters: CJK characters and emoji count 2, every link counts 23" in prompt
    assert "MASTODON: at most 500 characters: every link counts 23, a mention @user@domain counts as @user" in prompt
    assert "BLUESKY: at most 300 characters as a reader sees them (an emoji counts 1) and 3000 bytes" in prompt
    assert "INSTAGRAM: at most 2200 characters and 30 hashtags" in prompt
    assert "LINKEDIN: at most 3000 characters (an emoji counts 2)" in prompt
    assert "within 280 characters in all" in prompt


async def test_the_prompt_names_only_the_platforms_of_the_run() -> None:
    prompt = await _prompt_for((Platform.LINKEDIN,))
    assert "LINKEDIN: at most 3000 characters" in prompt and "TWITTER" not in prompt


def test_every_rule_has_words_that_carry_its_own_numbers() -> None:
    for platform, rule in RULES.items():
        words = describe(rule)
        assert words.startswith("at most ") and str(rule.measure("x").limit) in words, platform
    assert describe(MastodonRule(300, 40)) == (
        "at most 300 characters: every link counts 40, a mention @user@domain counts as @user"
    )
