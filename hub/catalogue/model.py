"""Catalogue entries (数据目录): what a resource is, who owns it, how it may be shared.

The model follows the national catalogue guidelines (目录编制指南): a resource with its
provider, summary, update cycle and publish date; its information items (信息项) with
types, personal-data tags and their own classification; its share attribute (共享属性),
open attribute (开放属性) and classification (GB/T 43697). A model that validates is
consistent in itself; :func:`hub.catalogue.binding.bind_schema` checks it against its
Avro schema.
"""

from __future__ import annotations

import datetime
import re
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.catalogue.codes import uscc_valid
from hub.catalogue.fields import FieldFormat, FieldRules, FieldType
from hub.policy.masking import MaskKind

_CODE = r"^[a-z0-9][a-z0-9_-]*$"


class ShareAttribute(StrEnum):
    """共享属性."""

    UNCONDITIONAL = "unconditional"  # 无条件共享
    CONDITIONAL = "conditional"  # 有条件共享
    NOT_SHARED = "not_shared"  # 不予共享

    @property
    def label(self) -> str:
        return {"unconditional": "无条件共享", "conditional": "有条件共享"}.get(self, "不予共享")


class OpenAttribute(StrEnum):
    """开放属性: whether the resource may be opened to the public."""

    OPEN = "open"  # 无条件开放
    CONDITIONAL = "conditional"  # 有条件开放
    NOT_OPEN = "not_open"  # 不予开放

    @property
    def label(self) -> str:
        return {"open": "无条件开放", "conditional": "有条件开放"}.get(self, "不予开放")


class Classification(StrEnum):
    """数据分类分级 (GB/T 43697)."""

    GENERAL = "general"  # 一般
    IMPORTANT = "important"  # 重要
    CORE = "core"  # 核心

    @property
    def label(self) -> str:
        return {"general": "一般数据", "important": "重要数据"}.get(self, "核心数据")

    @property
    def rank(self) -> int:
        return ("general", "important", "core").index(self.value)


class PersonalTag(StrEnum):
    """Personal-data tag of an information item (信息项)."""

    ID_CARD = "id_card"  # 身份证号
    NAME = "name"  # 姓名
    PHONE = "phone"  # 手机号
    ADDRESS = "address"  # 地址
    BANK_CARD = "bank_card"  # 银行卡号
    OTHER = "other"  # 其他

    @property
    def label(self) -> str:
        return _TAG_LABELS[self]

    @property
    def default_mask(self) -> MaskKind:
        return {
            PersonalTag.ID_CARD: MaskKind.ID_CARD,
            PersonalTag.NAME: MaskKind.NAME,
            PersonalTag.PHONE: MaskKind.PHONE,
            PersonalTag.ADDRESS: MaskKind.ADDRESS,
            PersonalTag.BANK_CARD: MaskKind.BANK_CARD,
            PersonalTag.OTHER: MaskKind.REDACT,
        }[self]


_TAG_LABELS = {
    PersonalTag.ID_CARD: "身份证号",
    PersonalTag.NAME: "姓名",
    PersonalTag.PHONE: "手机号",
    PersonalTag.ADDRESS: "地址",
    PersonalTag.BANK_CARD: "银行卡号",
    PersonalTag.OTHER: "其他",
}


class UpdateCycle(StrEnum):
    """更新周期."""

    REAL_TIME = "real-time"  # 实时
    DAILY = "daily"  # 每日
    WEEKLY = "weekly"  # 每周
    MONTHLY = "monthly"  # 每月
    QUARTERLY = "quarterly"  # 每季度
    YEARLY = "yearly"  # 每年
    IRREGULAR = "irregular"  # 不定期

    @property
    def label(self) -> str:
        labels = ("实时", "每日", "每周", "每月", "每季度", "每年", "不定期")
        return labels[list(UpdateCycle).index(self)]


class ShareMethod(StrEnum):
    """共享方式: how a consumer receives the resource."""

    STREAM = "stream"  # 订阅推送: encrypted delivery frames
    SERVICE = "service"  # 接口调用: record by key, listing, verification (核验)
    FILE = "file"  # 文件交换

    @property
    def label(self) -> str:
        return {"stream": "订阅推送", "service": "接口调用"}.get(self, "文件交换")


class ResourceStatus(StrEnum):
    ACTIVE = "active"
    DEPRECATED = "deprecated"  # 已停用: no new subscriptions

    @property
    def label(self) -> str:
        return "有效" if self is ResourceStatus.ACTIVE else "已停用"


E = TypeVar("E", bound=StrEnum)


def parse_term(kind: type[E], text: str) -> E:
    """An enum member from its value or its Chinese label (``核心`` or ``core``)."""
    wanted = text.strip()
    for member in kind:
        label = str(getattr(member, "label", ""))
        if wanted in (member.value, label) or (label and wanted == label.removesuffix("数据")):
            return member
    choices = ", ".join(member.value for member in kind)
    raise ValueError(f"{text!r} is not a {kind.__name__} (one of: {choices})")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ResourceField(_Frozen):
    """An information item (信息项)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Avro field name")
    title: str = Field(min_length=1, description="信息项名称")
    type: FieldType | None = Field(default=None, description="from the Avro schema")
    description: str = ""
    personal: PersonalTag | None = None
    classification: Classification = Classification.GENERAL
    required: bool = True
    rules: FieldRules = FieldRules()

    @model_validator(mode="after")
    def _consistent(self) -> ResourceField:
        problems = []
        if self.rules.format is FieldFormat.ID_CARD and self.personal is not PersonalTag.ID_CARD:
            problems.append("format id_card needs the personal tag id_card (身份证号)")
        if self.type is not None:
            if self.personal is not None and self.type is not FieldType.STRING:
                problems.append(
                    f"personal tag {self.personal.value} needs a string field, "
                    f"not {self.type.value}"
                )
            problems.extend(self.rules.type_problems(self.type))
        if problems:
            raise ValueError(f"field {self.name!r}: " + "; ".join(problems))
        return self


class Deprecation(_Frozen):
    reason: str = Field(min_length=1, max_length=500)
    at: datetime.datetime
    by: str = Field(min_length=1, description="party that deprecated the resource")


class Resource(_Frozen):
    code: str = Field(pattern=_CODE, max_length=64, description="resource code")
    name: str = Field(min_length=1, description="资源名称")
    department: str = Field(pattern=_CODE, max_length=64, description="provider department")
    department_name: str = Field(min_length=1, description="资源提供方")
    department_code: str | None = Field(
        default=None, description="提供方代码: the department's 统一社会信用代码 (GB 32100)"
    )
    summary: str = Field(default="", description="资源摘要")
    update_cycle: UpdateCycle = UpdateCycle.REAL_TIME
    publish_date: datetime.date | None = Field(default=None, description="发布日期")
    related: tuple[str, ...] = Field(default=(), description="关联资源 codes")
    share: ShareAttribute
    share_conditions: str = Field(default="", description="共享条件 (有条件共享)")
    share_basis: str = Field(default="", description="不予共享的依据 (laws or policies)")
    share_methods: tuple[ShareMethod, ...] = (ShareMethod.STREAM,)
    open_attribute: OpenAttribute = OpenAttribute.NOT_OPEN
    classification: Classification
    region_field: str
    key_field: str
    fields: tuple[ResourceField, ...] = Field(min_length=1)
    status: ResourceStatus = ResourceStatus.ACTIVE
    deprecation: Deprecation | None = None
    registered_at: datetime.datetime | None = None
    registered_by: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Resource:
        problems = [
            *self._field_problems(),
            *self._sharing_problems(),
            *self._metadata_problems(),
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _field_problems(self) -> list[str]:
        problems = []
        names = [f.name for f in self.fields]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            problems.append(f"fields {repeated} are listed more than once")
        by_name = {f.name: f for f in self.fields}
        for attr in ("region_field", "key_field"):
            name = getattr(self, attr)
            item = by_name.get(name)
            if item is None:
                problems.append(f"{attr} {name!r} is not one of the fields")
            elif not item.required:
                problems.append(f"{attr} {name!r} must be a required field")
        region = by_name.get(self.region_field)
        if region is not None and region.type not in (None, FieldType.STRING):
            problems.append(f"region_field {region.name!r} must be a string field")
        for item in self.fields:
            if item.classification.rank > self.classification.rank:
                problems.append(
                    f"field {item.name!r} is {item.classification.value} but the resource only "
                    f"{self.classification.value}: a resource is classified at least as high "
                    "as its most sensitive item"
                )
        return problems

    def _sharing_problems(self) -> list[str]:
        problems = []
        share, opened = self.share, self.open_attribute
        if share is ShareAttribute.CONDITIONAL and not self.share_conditions.strip():
            problems.append("有条件共享 (conditional) needs share_conditions")
        if share is ShareAttribute.NOT_SHARED and not self.share_basis.strip():
            problems.append("不予共享 (not_shared) needs share_basis: the law or policy behind it")
        if share is ShareAttribute.UNCONDITIONAL and self.share_conditions.strip():
            problems.append("无条件共享 (unconditional) cannot have share_conditions")
        if self.classification is Classification.CORE and share is ShareAttribute.UNCONDITIONAL:
            problems.append("a 核心 (core) resource cannot be shared unconditionally")
        if share is not ShareAttribute.NOT_SHARED and not self.share_methods:
            problems.append("share_methods must name at least one method")
        if opened is not OpenAttribute.NOT_OPEN:
            if share is ShareAttribute.NOT_SHARED:
                problems.append("a 不予共享 resource cannot be open")
            if self.classification is Classification.CORE:
                problems.append("a 核心 (core) resource cannot be open")
            if opened is OpenAttribute.OPEN and self.personal_fields():
                problems.append(
                    "an unconditionally open resource cannot carry personal-data fields "
                    f"{sorted(self.personal_fields())}"
                )
        return problems

    def _metadata_problems(self) -> list[str]:
        problems = []
        if self.department_code is not None and not uscc_valid(self.department_code):
            problems.append(
                f"department_code {self.department_code!r} is not a valid 统一社会信用代码 "
                "(GB 32100)"
            )
        for code in self.related:
            if code == self.code:
                problems.append("related must not name the resource itself")
            elif not _is_code(code):
                problems.append(f"related resource code {code!r} is malformed")
        deprecated = self.status is ResourceStatus.DEPRECATED
        if deprecated != (self.deprecation is not None):
            problems.append("status deprecated and a deprecation record go together")
        return problems

    # -- views -----------------------------------------------------------------------------
    @property
    def subject(self) -> str:
        """The schema registry subject of the resource's source topic values."""
        return f"govhub.src.{self.department}.{self.code}-value"

    @property
    def active(self) -> bool:
        return self.status is ResourceStatus.ACTIVE

    def field(self, name: str) -> ResourceField | None:
        for item in self.fields:
            if item.name == name:
                return item
        return None

    def personal_fields(self) -> dict[str, PersonalTag]:
        return {f.name: f.personal for f in self.fields if f.personal is not None}


def _is_code(value: str) -> bool:
    return re.fullmatch(_CODE, value) is not None and len(value) <= 64
