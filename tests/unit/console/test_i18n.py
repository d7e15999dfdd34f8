"""The console's message catalogue and its translation of the API's own errors."""

from __future__ import annotations

import re
import string

import pytest
from pydantic import ValidationError

from hub.console.i18n import FORM_LEVEL, LANGUAGES, Translator, catalogue, pick_language
from hub.subscriptions.requests import ReasonRequest, SubscriptionRequest


def test_every_text_has_both_languages_and_the_same_placeholders() -> None:
    names = string.Formatter()
    for key, entry in catalogue().text.items():
        assert set(entry) >= set(LANGUAGES), key
        fields = [{f for _, f, _, _ in names.parse(entry[lang]) if f} for lang in LANGUAGES]
        assert fields[0] == fields[1], key


def test_every_lifecycle_pattern_compiles_and_fills_both_languages() -> None:
    for pattern in catalogue().lifecycle_errors:
        groups = pattern.regex.groups
        for text in pattern.text.values():
            text.format(*["x"] * groups)  # no placeholder beyond the groups


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        (None, None, None, "zh"),
        ("en", None, None, "en"),
        (None, "en", "zh-CN", "en"),
        ("zh", "en", "en-US", "zh"),
        (None, None, "en-GB,en;q=0.9", "en"),
        ("fr", "de", None, "zh"),
    ],
)
def test_language_choice(
    query: str | None, cookie: str | None, accept: str | None, expected: str
) -> None:
    assert pick_language(query, cookie, accept) == expected


def errors_of(body: dict[str, object], lang: str = "zh") -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        SubscriptionRequest.model_validate(body)
    return Translator(lang).validation_errors(caught.value)


def test_validation_errors_per_field_in_chinese() -> None:
    errors = errors_of(
        {
            "resource": "dibao",
            "purpose": "",
            "jurisdiction": "11010500100X",
            "duration_days": "thirty",
            "rate_limit_per_s": 0,
        }
    )
    assert errors == {
        "purpose": "此项必填（至少 1 个字符）",
        "jurisdiction": "区划代码须为 12 位数字",
        "duration_days": "请输入整数",
        "rate_limit_per_s": "不能小于 1",
    }


def test_validation_errors_in_english() -> None:
    errors = errors_of({"resource": "dibao", "purpose": "x", "duration_days": 99999}, "en")
    assert errors == {"duration_days": "At most 3660"}


def test_nested_policy_errors_belong_to_the_policy_field() -> None:
    errors = errors_of({"resource": "dibao", "purpose": "x", "masking": {"name": "no-such-mask"}})
    assert set(errors) == {"masking"}


def test_blank_reason_is_refused_in_chinese() -> None:
    with pytest.raises(ValidationError) as caught:
        ReasonRequest.model_validate({"reason": ""})
    assert Translator("zh").validation_errors(caught.value) == {
        "reason": "此项必填（至少 1 个字符）"
    }


@pytest.mark.parametrize(
    ("message", "field", "chinese"),
    [
        (
            "jurisdiction 110105000000 is wider than or outside your own region 110105001000: "
            "a scope must be your region or a part of it",
            "jurisdiction",
            "辖区 110105000000 超出本单位区划 110105001000：只能申请本区划或其下级",
        ),
        (
            "duplicate request: subscription sub-1 for dibao in 110105001000 is already checked",
            "jurisdiction",
            "重复申请：辖区 110105001000 的资源 dibao 已有申请 sub-1（待审批）",
        ),
        (
            "fields names fields the schema of resource dibao lacks: ['salary']",
            "fields",
            "资源没有这些信息项：['salary']",
        ),
        (
            "subscription sub-1 is revoked; nothing to revoke",
            FORM_LEVEL,
            "授权 sub-1 当前为“已撤销”，无可撤销",
        ),
        ("a reason is required", "reason", "请填写理由"),
    ],
)
def test_lifecycle_refusals_are_translated_to_their_field(
    message: str, field: str, chinese: str
) -> None:
    assert Translator("zh").lifecycle_error(message) == (field, chinese)


def test_unknown_refusals_keep_their_text_on_the_form() -> None:
    assert Translator("zh").lifecycle_error("something new") == (FORM_LEVEL, "something new")


def test_lifecycle_messages_of_the_domain_are_covered() -> None:
    """Every refusal message the lifecycle module can raise has a translation."""
    import inspect

    from hub.subscriptions import lifecycle, validation

    source = inspect.getsource(lifecycle) + inspect.getsource(validation)
    calls = re.findall(r'LifecycleError\(\s*\d+,\s*((?:f?"[^"]*"\s*)+)', source)
    raised = ["".join(re.findall(r'"([^"]*)"', call)) for call in calls]
    assert len(raised) >= 10
    patterns = catalogue().lifecycle_errors
    for template in raised:
        sample = re.sub(r"\{[^}]*\}", "1", template)
        assert any(p.regex.search(sample) for p in patterns), template
