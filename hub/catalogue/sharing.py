"""Sharing rules that follow from a catalogue entry (for the subscriptions workflow).

- A 不予共享 (not shared) resource cannot be subscribed to; neither can a deprecated one.
- 无条件共享 resources are granted on request, without an approval (the consumer obtains
  them directly, as the national rules put it); 有条件共享 resources need the owning
  department's approval; 核心 (core) resources need the security admin's approval as well.
- Personal-data fields reach grassroots units masked by default
  (:attr:`hub.catalogue.model.PersonalTag.default_mask`, applied by the router).
"""

from __future__ import annotations

from enum import StrEnum

from hub.catalogue.model import Classification, Resource, ResourceStatus, ShareAttribute


class Approver(StrEnum):
    """Who must approve a subscription request."""

    OWNER = "owner"  # the department that provides the resource
    SECURITY_ADMIN = "security_admin"  # 安全保密管理员 (Role.SECURITY_ADMIN)


class NotSubscribable(ValueError):
    """The resource cannot be subscribed to; the message says why."""


def subscribable(resource: Resource) -> tuple[bool, str]:
    """Whether a new subscription to ``resource`` may be requested, and if not, why."""
    if resource.share is ShareAttribute.NOT_SHARED:
        return False, (
            f"resource {resource.code} is 不予共享 (not shared): {resource.share_basis.strip()}"
        )
    if resource.status is ResourceStatus.DEPRECATED:
        why = resource.deprecation.reason if resource.deprecation else "no reason recorded"
        return False, f"resource {resource.code} is deprecated: {why}"
    return True, ""


def required_approvals(resource: Resource) -> set[str]:
    """The approvals a subscription request needs (:class:`Approver` values).

    Empty for 无条件共享: such requests are granted directly. Raises
    :class:`NotSubscribable` for a resource that cannot be subscribed to at all — call
    :func:`subscribable` first.
    """
    allowed, why = subscribable(resource)
    if not allowed:
        raise NotSubscribable(why)
    needed: set[str] = set()
    if resource.share is ShareAttribute.CONDITIONAL:
        needed.add(Approver.OWNER)
    if resource.classification is Classification.CORE:
        needed |= {Approver.OWNER, Approver.SECURITY_ADMIN}
    return needed
