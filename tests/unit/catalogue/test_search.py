"""Chinese full-text search by character bigrams, ranked, with exact filters."""

from __future__ import annotations

from hub.catalogue.binding import bind_schema
from hub.catalogue.model import Classification, PersonalTag, ResourceStatus, ShareAttribute
from hub.catalogue.samples import load_sample, sample_names
from hub.catalogue.search import CatalogueIndex, Filters, tokens
from tests.unit.catalogue.conftest import SCHEMA, entry

SAMPLES = [load_sample(name).resource for name in sample_names()]
INDEX = CatalogueIndex(SAMPLES)


def codes(query: str, filters: Filters | None = None) -> list[str]:
    return [hit.resource.code for hit in INDEX.find(filters or Filters(), query)]


def test_tokens_are_bigrams_and_words() -> None:
    assert tokens("低保救助") == ["低保", "保救", "救助"]
    assert tokens("户") == ["户"]
    assert tokens("GB 32100 统一社会信用代码") == [
        "gb",
        "32100",
        "统一",
        "一社",
        "社会",
        "会信",
        "信用",
        "用代",
        "代码",
    ]
    assert tokens("ＡＢＣ，低保") == ["abc", "低保"]  # full-width forms normalised


def test_search_finds_and_ranks_in_chinese() -> None:
    assert codes("低保")[0] == "dibao"
    assert codes("户籍")[0] == "huji"
    assert codes("统一社会信用代码")[0] == "qiye"  # its exact item title; shebao has it inside one
    assert set(codes("统一社会信用代码")) == {"qiye", "shebao"}
    assert codes("网格事件") == ["wangge"]
    assert codes("参保")[0] == "shebao"
    assert codes("法定代表人") == ["qiye"]
    assert codes("dibao") == ["dibao"]  # codes are searchable too
    assert codes("量子计算") == []
    assert codes("？！") == []


def test_name_matches_rank_above_description_matches() -> None:
    in_name = bind_schema(entry(code="a-name", name="低保边缘家庭"), SCHEMA)
    in_summary = bind_schema(entry(code="b-summary", summary="为低保边缘家庭提供临时救助"), SCHEMA)
    index = CatalogueIndex([in_summary, in_name])
    hits = index.find(Filters(), "低保边缘家庭")
    assert [h.resource.code for h in hits] == ["a-name", "b-summary"]
    assert hits[0].score > hits[1].score


def test_a_resource_must_match_half_the_query() -> None:
    # 低保 alone is one of four bigrams of the query: not enough.
    assert "dibao" not in codes("低保卫星发射")


def test_filters() -> None:
    assert codes("", Filters(department="rsj")) == ["shebao"]
    assert set(codes("", Filters(tag=PersonalTag.BANK_CARD))) == {"shebao"}
    assert codes("", Filters(classification=Classification.CORE)) == ["huji"]
    unconditional = set(codes("", Filters(share=ShareAttribute.UNCONDITIONAL)))
    assert unconditional == {"qiye", "wangge"}
    assert codes("", Filters(status=ResourceStatus.DEPRECATED)) == []
    important = set(codes("姓名", Filters(classification=Classification.IMPORTANT)))
    assert important == {"dibao", "shebao"}
    assert len(INDEX) == len(SAMPLES) and INDEX.get("dibao") is not None
