"""Drafting rules: platform limits (280 on TWITTER), the brand's voice, hashtags, and the LLM
writer's fallback to the template."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from hopcast_content.adapters.generators import LlmGenerator
from hopcast_content.domain.drafting import (
    BrandVoice,
    Draft,
    DraftRequest,
    MaterialText,
    TemplateGenerator,
    char_limit,
    contains_avoided,
    finalise,
    remove_avoided,
    style_hashtag,
)
from hopcast_shared.contract import Angle, Platform
from hopcast_shared.contract.examples import example_data
from hopcast_shared.contract.text import post_text

PROFILE = example_data("BrandProfileCreated")
VOICE = BrandVoice.from_profile(PROFILE["name"], PROFILE)
LONG_BODY = " ".join(
    f"Sentence {i} about our cheap beans and the fresh roast that makes every cup taste better than before."
    for i in range(40)
)
MATERIAL = MaterialText(
    uuid.uuid4(),
    "TEXT",
    "Why we roast on Tuesdays",
    "We roast every Tuesday so that every bag is less than a week old. Cheap beans never make it in.",
    (),
    "behind the scenes",
)


def request(material: MaterialText = MATERIAL, platforms=(Platform.TWITTER,), angle=Angle.STORYTELLING, voice=VOICE):
    return DraftRequest(material, voice, tuple(platforms), angle, "because")


@pytest.mark.parametrize(
    "platforms",
    [
        (Platform.TWITTER,),
        (Platform.BLUESKY,),
        (Platform.LINKEDIN, Platform.TWITTER),
        (Platform.MASTODON,),
        (Platform.INSTAGRAM,),
    ],
)
@pytest.mark.parametrize("angle", list(Angle))
def test_the_whole_post_fits_the_smallest_platform_limit(platforms, angle) -> None:
    long = MaterialText(uuid.uuid4(), "TEXT", "A long one", LONG_BODY, ("https://cdn.example/a.jpg",), "offers")
    draft = TemplateGenerator().write(request(long, platforms, angle))
    text = post_text(draft.content, draft.hashtags, draft.media_urls)
    assert len(text) <= char_limit(platforms)
    assert draft.content and not contains_avoided(text, VOICE.words_to_avoid)
    if Platform.TWITTER in platforms:
        assert len(text) <= 280


def test_twitter_draft_of_a_short_material_keeps_its_sentences_and_the_voice() -> None:
    draft = TemplateGenerator().write(request())
    assert "less than a week old" in draft.content
    assert "cheap" not in draft.content.casefold()  # words_to_avoid
    assert "roast" in draft.content  # a word to use
    assert draft.content.count("!") >= 1  # playful tone
    assert draft.hashtags == ("#coffee", "#homebarista")  # default hashtags, lowercase, at most 2 on TWITTER
    assert TemplateGenerator().write(request()) == draft  # deterministic


def test_each_angle_frames_the_post_differently() -> None:
    contents = {TemplateGenerator().write(request(platforms=(Platform.LINKEDIN,), angle=a)).content for a in Angle}
    assert len(contents) == len(Angle)


def test_no_emoji_no_cta_no_hashtags_when_the_brand_says_none() -> None:
    plain = dict(
        PROFILE,
        language_rules=dict(PROFILE["language_rules"], emoji_usage="none", cta_style="none", hashtag_style="none"),
    )
    voice = BrandVoice.from_profile("Plain", plain)
    draft = TemplateGenerator().write(request(voice=voice, platforms=(Platform.LINKEDIN,)))
    assert draft.hashtags == ()
    assert draft.content.isascii()  # no emoji
    assert "Curious" not in draft.content and "story too" not in draft.content


def test_a_word_to_use_is_woven_in_when_missing() -> None:
    voice = BrandVoice.from_profile(
        "B", dict(PROFILE, language_rules=dict(PROFILE["language_rules"], words_to_use=["handcrafted"]))
    )
    assert "Handcrafted" in TemplateGenerator().write(request(voice=voice, platforms=(Platform.LINKEDIN,))).content


def test_hashtag_styles() -> None:
    assert style_hashtag("home barista", "camelCase") == "#homeBarista"
    assert style_hashtag("#home barista", "PascalCase") == "#HomeBarista"
    assert style_hashtag("Home Barista", "lowercase") == "#homebarista"
    assert style_hashtag("#!!", "lowercase") is None


def test_avoided_words_are_removed_as_whole_words_in_any_case() -> None:
    assert remove_avoided("Cheap beans, not cheapskates. So CHEAP!", ["cheap"]) == "Beans, not cheapskates. So!"


def test_finalise_bounds_any_generator_output() -> None:
    wild = Draft("cheap " * 200, tuple(f"#tag{i}" for i in range(30)), ())
    final = finalise(wild, request(platforms=(Platform.TWITTER,)))
    assert len(post_text(final.content, final.hashtags)) <= 280 and len(final.hashtags) <= 2
    assert "cheap" not in final.content.casefold()


def _chat_answer(content: dict[str, object]) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"content": json.dumps(content)}}]})


async def test_llm_generator_uses_the_answer_within_the_rules() -> None:
    seen: list[dict[str, object]] = []

    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(json.loads(req.content))
        assert req.headers["authorization"] == "Bearer k"
        return _chat_answer(
            {"content": "Fresh roast every Tuesday, never cheap. " * 20, "hashtags": ["#coffee", "#roast", "#x"]}
        )

    gen = LlmGenerator("http://llm.test/v1", "m", api_key="k", transport=httpx.MockTransport(handle))
    draft = await gen.draft(request())
    assert draft.notes == ("llm",) and gen.fallbacks == 0
    assert len(post_text(draft.content, draft.hashtags)) <= 280 and "cheap" not in draft.content.casefold()
    assert "280" in json.dumps(seen[0])  # the prompt states the limit


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, text="overloaded"),
        httpx.Response(200, json={"choices": []}),
        httpx.Response(200, json={"choices": [{"message": {"content": "not json"}}]}),
        httpx.Response(200, json={"choices": [{"message": {"content": '{"content": ""}'}}]}),
    ],
)
async def test_llm_generator_falls_back_to_the_template(answer: httpx.Response) -> None:
    gen = LlmGenerator("http://llm.test/v1", "m", transport=httpx.MockTransport(lambda req: answer))
    draft = await gen.draft(request())
    assert draft.notes == ("template-fallback",) and gen.fallbacks == 1
    assert draft.content == TemplateGenerator().write(request()).content


async def test_llm_generator_falls_back_on_timeout() -> None:
    def slow(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=req)

    gen = LlmGenerator("http://llm.test/v1", "m", timeout_s=0.01, transport=httpx.MockTransport(slow))
    assert (await gen.draft(request())).notes == ("template-fallback",)


def test_a_media_only_material_is_drafted_from_its_file_name() -> None:
    image = MaterialText(uuid.uuid4(), "IMAGE", None, "", ("https://cdn.example/img/spring-menu_2027.jpg?v=2",), None)
    draft = TemplateGenerator().write(request(image, (Platform.INSTAGRAM,), Angle.PRODUCT_FOCUS))
    assert "Spring menu 2027" in draft.content and draft.media_urls == image.media_urls
    other = MaterialText(uuid.uuid4(), "IMAGE", None, "", ("https://cdn.example/img/latte-art.png",), None)
    assert (
        TemplateGenerator().write(request(other, (Platform.INSTAGRAM,), Angle.PRODUCT_FOCUS)).content != draft.content
    )
