# ruff: noqa: RUF001 - full-width punctuation is part of the realistic texts
"""Each platform's text of a draft passes that platform's own rule (hopcast_shared.text_rules),
for realistic drafts of the template writer: brands in several languages and emoji habits,
materials with links, mentions and media, every angle, every platform."""

from __future__ import annotations

import itertools
import random
import uuid

from hopcast_content.domain.drafting import BrandVoice, Draft, DraftRequest, MaterialText, TemplateGenerator
from hopcast_content.domain.platform_texts import text_for, texts_for
from hopcast_shared.contract import Angle, Platform
from hopcast_shared.contract.text import post_text
from hopcast_shared.text_rules import ELLIPSIS, rule_for
from hopcast_shared.text_rules.entities import extract_urls

SENTENCES = {
    "en": [
        "We roast every Tuesday so that every bag is less than a week old.",
        "Our new spring menu is here, with three drinks you asked for.",
        "Read the full story on our blog: https://blog.example.com/2027/03/spring-menu-behind-the-scenes",
        "Thanks to @alice@mastodon.social and @bob for the photos!",
        "Doors open at 8am, come early for the fresh croissants 🥐.",
        "Family owned since 1987 👨‍👩‍👧‍👦 and proud of it.",
        "Book a table at example.com/book or call us.",
    ],
    "ja": [
        "毎週火曜日に焙煎しているので、どの袋も一週間以内の新鮮さです。",
        "春の新メニューが登場しました。皆さまのリクエストにお応えした三つのドリンクです。",
        "詳しくはブログをご覧ください: https://blog.example.jp/2027/spring",
        "朝8時オープン、焼きたてのクロワッサンをどうぞ🥐。",
    ],
    "zh": [
        "我们每周二烘焙，保证每一袋咖啡都在一周之内。",
        "春季新菜单上线了，三款饮品都是大家点名想要的。",
        "欢迎预订：https://example.cn/book 🎉🎉",
    ],
    "mixed": [
        "Nouveau menu de printemps 🌸🌸 — découvrez-le sur https://example.fr/menu?lang=fr&utm_source=social",
        "Gracias a todos 🙏🏽🙏🏽🙏🏽 por venir al evento #Madrid",
        "한국어 메뉴도 준비했어요 🇰🇷 https://example.kr/menu",
    ],
}
PLATFORMS = [Platform.TWITTER, Platform.MASTODON, Platform.BLUESKY, Platform.THREADS, Platform.LINKEDIN]


def realistic_requests(n: int) -> list[DraftRequest]:
    rng = random.Random(17)
    requests = []
    for i in range(n):
        language = rng.choice(list(SENTENCES))
        pool = SENTENCES[language] + SENTENCES["en"][:2]
        body = " ".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))
        media = tuple(f"https://cdn.example.com/media/spring-menu-{i}-{k}.jpg" for k in range(rng.randint(0, 2)))
        title = rng.choice([None, "Spring menu 🌸", "春の新メニュー"])
        material = MaterialText(uuid.uuid4(), "TEXT", title, body, media)
        voice = BrandVoice(
            name=rng.choice(["Hopcast Coffee", "珈琲ホップ", "Café Fleur"]),
            tone=("playful",) if rng.random() < 0.5 else ("calm",),
            target_audience=rng.choice(["", "coffee lovers in Lyon", "東京のコーヒー好き"]),
            emoji_usage=rng.choice(["", "heavy", "light"]),
            cta_style=rng.choice(["", "direct", "soft"]),
            default_hashtags=tuple(rng.sample(["coffee", "spring menu", "freshRoast", "コーヒー", "café"], 3)),
        )
        platforms = tuple(rng.sample(PLATFORMS, rng.randint(1, 3)))
        requests.append(DraftRequest(material, voice, platforms, rng.choice(list(Angle)), "because"))
    return requests


def test_every_realistic_draft_text_passes_its_platform_rule() -> None:
    over_before = over_after = checked = 0
    for request in realistic_requests(300):
        draft = TemplateGenerator().write(request)
        texts = texts_for(draft, request.platforms)
        assert set(texts) == set(request.platforms)
        composed = post_text(draft.content, draft.hashtags, draft.media_urls)
        for platform, text in texts.items():
            rule = rule_for(platform)
            checked += 1
            over_before += not rule.fits(composed)
            over_after += not rule.fits(text)
            assert text.strip()
            if text == composed:
                continue
            # A shortened text keeps every URL it shows whole.
            for url in extract_urls(text):
                assert text[url.start : url.end] in composed
    # The old composition, counted as the platforms count, was refused; the texts never are.
    assert checked > 500 and over_before > 5
    assert over_after == 0


def test_a_draft_that_fits_is_posted_as_composed_without_its_media_links() -> None:
    draft = Draft("Spring menu is here.", ("#coffee",), ("https://cdn.example.com/a.jpg",))
    # The image goes to the platforms as media (issue 18), not as a link in the text.
    assert texts_for(draft, [Platform.TWITTER, Platform.BLUESKY]) == {
        Platform.TWITTER: "Spring menu is here.\n\n#coffee",
        Platform.BLUESKY: "Spring menu is here.\n\n#coffee",
    }


def test_a_text_over_x_weight_loses_hashtags_then_words_never_a_url() -> None:
    content = "春の新メニューが登場しました。" * 12 + " https://example.jp/menu"
    text = text_for(Draft(content, ("#coffee", "#spring")), rule_for(Platform.TWITTER))
    assert rule_for(Platform.TWITTER).fits(text)
    assert text.endswith(ELLIPSIS) and "#coffee" not in text
    assert "https://example.jp/men" not in text or "https://example.jp/menu" in text


def test_family_emoji_are_never_split() -> None:
    content = "👨‍👩‍👧‍👦" * 600
    for platform in PLATFORMS:
        text = text_for(Draft(content, ()), rule_for(platform))
        assert rule_for(platform).fits(text)
        assert set(itertools.chain(text.replace("👨‍👩‍👧‍👦", ""))) == {ELLIPSIS}
