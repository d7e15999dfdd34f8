"""Catalogue entries (数据目录): what a resource is, who owns it, how it may be shared."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.policy.masking import MaskKind


class ShareAttribute(StrEnum):
    """共享属性."""

    UNCONDITIONAL = "unconditional"  # 无条件共享
    CONDITIONAL = "conditional"  # 有条件共享
    NOT_SHARED = "not_shared"  # 不予共享


class Classification(StrEnum):
    """数据分类分级 (GB/T 43697)."""

    GENERAL = "general"  # 一般
    IMPORTANT = "important"  # 重要
    CORE = "core"  # 核心


class PersonalTag(StrEnum):
    """Personal-data tag of an information item (信息项)."""

    ID_CARD = "id_card"  # 身份证号
    NAME = "name"  # 姓名
    PHONE = "phone"  # 手机号
    ADDRESS = "address"  # 地址
    BANK_CARD = "bank_card"  # 银行卡号
    OTHER = "other"  # 其他

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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ResourceField(_Frozen):
    name: str = Field(min_length=1)
    title: str = Field(description="信息项名称")
    personal: PersonalTag | None = None
    classification: Classification = Classification.GENERAL
    required: bool = True


class Resource(_Frozen):
    code: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="resource code")
    name: str = Field(min_length=1, description="资源名称")
    department: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="provider department")
    department_name: str
    summary: str = ""
    update_cycle: str = "real-time"
    share: ShareAttribute
    classification: Classification
    region_field: str
    key_field: str
    fields: tuple[ResourceField, ...]

    @model_validator(mode="after")
    def _fields_exist(self) -> Resource:
        names = {f.name for f in self.fields}
        for attr in ("region_field", "key_field"):
            if getattr(self, attr) not in names:
                raise ValueError(f"{attr} {getattr(self, attr)!r} is not one of the fields")
        return self

    @property
    def subject(self) -> str:
        return f"govhub.src.{self.department}.{self.code}-value"

    def personal_fields(self) -> dict[str, PersonalTag]:
        return {f.name: f.personal for f in self.fields if f.personal is not None}
