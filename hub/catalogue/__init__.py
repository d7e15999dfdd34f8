"""The resource catalogue (数据目录): entries, sharing rules, data-quality rules, search.

What other parts of the hub call:

- ``model.Resource`` and its enums; ``binding.bind_schema(entry, schema_json)``;
- ``sharing.subscribable(resource)`` and ``sharing.required_approvals(resource)``;
- ``quality.check_record(resource, record, regions=None)`` and ``quality.redact_personal``;
- ``known_regions.RegionDirectory`` (``from_parties``, ``from_file``);
- ``samples.load_sample(name)``. See docs/catalogue.md.
"""
