import pytest

from hub.subscriptions.lifecycle import LifecycleError
from hub.subscriptions.model import Policy
from hub.subscriptions.validation import check_policy
from tests.unit.subscriptions.builders import COMMUNITY, CONDITIONAL, SAMPLE, STREET

SCHEMA = SAMPLE.schema_json


def check(party: object = STREET, **policy: object) -> None:
    check_policy(Policy.model_validate(policy), CONDITIONAL, SCHEMA, party)  # type: ignore[arg-type]


def test_a_fitting_policy_passes() -> None:
    check(
        fields=["name", "region_code", "approved_on"],
        masking={"name": "pseudonym", "approved_on": "month"},
        filters=[{"field": "category", "op": "eq", "value": "URBAN"}],
    )
    check(COMMUNITY, unmasked=["name"])


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"fields": ["name", "salary"]}, "fields names fields the schema .* lacks: \\['salary'\\]"),
        ({"masking": {"salary": "redact"}}, "masking names fields"),
        ({"unmasked": ["amount"]}, "not personal"),
        ({"masking": {"household_size": "name"}}, "not a string"),
        ({"masking": {"amount": "month"}}, "not a date"),
        ({"filters": [{"field": "amount", "op": "gt", "value": "many"}]}, "decimal"),
        ({"filters": [{"field": "salary", "op": "gt", "value": 1}]}, "does not have"),
    ],
)
def test_policies_the_schema_cannot_honour_are_400(policy: dict[str, object], message: str) -> None:
    with pytest.raises(LifecycleError, match=message) as err:
        check(**policy)
    assert err.value.status == 400
