"""Console forms become the REST API's own request models, with the same refusals."""

from __future__ import annotations

from hub.console import forms
from hub.console.i18n import Translator
from hub.policy.masking import MaskKind, MaskRule
from hub.subscriptions.requests import SubscriptionRequest

FIELDS = ["id_card", "name", "region_code", "household_size", "address"]
T = Translator("zh")


def form(*pairs: tuple[str, str]) -> forms.FormData:
    return forms.FormData(list(pairs))


def test_request_form_gives_the_model_a_rest_client_would_send() -> None:
    submitted = form(
        ("purpose", " 健康随访 "),
        ("jurisdiction", "110105001000"),
        ("duration_days", "30"),
        ("delivery", "stream"),
        ("fields_present", "1"),
        *[("field", f) for f in FIELDS if f != "address"],
        ("mask_name", "name"),
        ("mask_id_card", "keep:6:4"),
        ("mask_address", ""),
        ("unmask", "id_card"),
    )
    result = forms.subscription_request(submitted, "dibao", FIELDS, T)
    assert result.errors == {}
    assert result.model == SubscriptionRequest.model_validate(
        {
            "resource": "dibao",
            "purpose": "健康随访",
            "jurisdiction": "110105001000",
            "duration_days": 30,
            "delivery": "stream",
            "fields": ["id_card", "name", "region_code", "household_size"],
            "masking": {"name": "name", "id_card": {"kind": "keep", "first": 6, "last": 4}},
            "unmasked": ["id_card"],
        }
    )
    assert result.model is not None
    assert result.model.masking["id_card"] == MaskRule(kind=MaskKind.KEEP, first=6, last=4)


def test_all_fields_checked_means_every_field() -> None:
    submitted = form(("purpose", "x"), ("fields_present", "1"), *[("field", f) for f in FIELDS])
    result = forms.subscription_request(submitted, "dibao", FIELDS, T)
    assert result.model is not None and result.model.fields is None


def test_request_errors_are_per_field_in_chinese() -> None:
    submitted = form(("purpose", ""), ("jurisdiction", "123"), ("duration_days", "1.5天"))
    result = forms.subscription_request(submitted, "dibao", FIELDS, T)
    assert result.model is None
    assert result.errors == {
        "purpose": "此项必填（至少 1 个字符）",
        "jurisdiction": "区划代码须为 12 位数字",
        "duration_days": "请输入整数",
    }


def test_approval_form_replaces_the_policy_whole() -> None:
    submitted = form(
        ("fields_present", "1"),
        ("field", "name"),
        ("field", "household_size"),
        ("mask_name", "name"),
        ("filters", "household_size:ge:2\n\ncategory:in:URBAN,RURAL\n"),
        ("duration_days", "365"),
    )
    result = forms.approval(submitted, FIELDS, T)
    assert result.errors == {}
    assert result.model is not None and result.model.policy is not None
    policy = result.model.policy
    assert policy.fields == ("name", "household_size")
    assert policy.masking == {"name": MaskKind.NAME}
    assert [(f.field, f.op.value) for f in policy.filters] == [
        ("household_size", "ge"),
        ("category", "in"),
    ]
    assert result.model.duration_days == 365


def test_malformed_filter_and_mask_are_refused_next_to_their_fields() -> None:
    submitted = form(("filters", "household_size >= 2"), ("mask_name", "keep:x"))
    result = forms.approval(submitted, FIELDS, T)
    assert result.model is None
    assert result.errors == {
        "filters": "条件“household_size >= 2”格式应为 字段:运算:值",
        "masking": "脱敏方式不正确",
    }


def test_reason_form() -> None:
    assert forms.reason(form(("reason", "任务结束")), T).model is not None
    assert forms.reason(form(("reason", "   ")), T).errors == {"reason": "格式不正确"}
