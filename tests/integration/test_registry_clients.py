"""Stock ``confluent_kafka.schema_registry`` clients against the hub's registry, with
records round-tripped through a real topic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.integration.test_registry_support import ADMIN, TOKENS, api_hub, basic_auth, record
from tests.kafka_fixtures import TopicFactory

OPTIONAL_INT = {"type": "int", "default": 0}
OPTIONAL_STRING = {"type": "string", "default": ""}
PERSON = record(id="string", name="string")
WITH_OPTIONAL_AGE = record(id="string", name="string", age=OPTIONAL_INT)
WITH_REQUIRED_AGE = record(id="string", name="string", age="int")
WITHOUT_NAME = record(id="string")
NAME_OPTIONAL = record(id="string", name=OPTIONAL_STRING)
NAME_AS_INT = record(id="string", name="int")
WITH_AGE_AND_CITY = record(id="string", name="string", age=OPTIONAL_INT, city=OPTIONAL_STRING)
NAME_AND_AGE_OPTIONAL = record(id="string", name=OPTIONAL_STRING, age=OPTIONAL_INT)


@pytest.fixture(scope="module")
def client(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SchemaRegistryClient]:
    with api_hub(kafka_bootstrap, tmp_path_factory.mktemp("registry-clients")) as runtime:
        yield SchemaRegistryClient(
            {
                "url": runtime.api_url + "/registry",
                "basic.auth.user.info": basic_auth(TOKENS[ADMIN]),
            }
        )


def avro(schema: str) -> Schema:
    return Schema(schema, "AVRO")


def test_client_registers_and_looks_up(client: SchemaRegistryClient) -> None:
    schema_id = client.register_schema("people-value", avro(PERSON))
    assert client.register_schema("people-value", avro(PERSON)) == schema_id
    found = client.lookup_schema("people-value", avro(PERSON))
    assert (found.schema_id, found.version, found.subject) == (schema_id, 1, "people-value")
    assert (
        client.get_schema(schema_id).schema_str
        == client.get_latest_version("people-value").schema.schema_str
    )
    assert client.get_versions("people-value") == [1]
    assert "people-value" in client.get_subjects()
    assert client.get_schema_types() == ["AVRO"]
    assert [(v.subject, v.version) for v in client.get_schema_versions(schema_id)] == [
        ("people-value", 1)
    ]
    with pytest.raises(SchemaRegistryError) as info:
        client.get_version("people-value", 9)
    assert (info.value.http_status_code, info.value.error_code) == (404, 40402)
    assert client.delete_subject("people-value") == [1]
    assert client.delete_subject("people-value", permanent=True) == [1]


def test_serializers_round_trip_through_kafka(
    client: SchemaRegistryClient, kafka_bootstrap: str, new_topic: TopicFactory, group_id: str
) -> None:
    topic = new_topic(partitions=1)
    serializer = AvroSerializer(client, PERSON, conf={"subject.name.strategy.type": "TOPIC"})
    deserializer = AvroDeserializer(client)
    rows = [{"id": f"{n}", "name": f"名字{n}"} for n in range(5)]
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for row in rows:
        ctx = SerializationContext(topic, MessageField.VALUE)
        producer.produce(topic, value=serializer(row, ctx))
    assert producer.flush(30) == 0
    assert client.get_latest_version(f"{topic}-value").schema_id is not None

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": group_id,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    received = []
    try:
        while len(received) < len(rows):
            msg = consumer.poll(10)
            assert msg is not None, f"only {len(received)} records arrived"
            assert msg.error() is None
            value = msg.value()
            assert value is not None and value[0] == 0  # Confluent framing
            received.append(deserializer(value, SerializationContext(topic, MessageField.VALUE)))
    finally:
        consumer.close()
    assert received == rows


# mode -> (history, a compatible next schema, an incompatible one or None)
EVOLUTIONS = {
    "BACKWARD": ([PERSON], WITH_OPTIONAL_AGE, WITH_REQUIRED_AGE),
    "FORWARD": ([PERSON], WITH_REQUIRED_AGE, WITHOUT_NAME),
    "FULL": ([PERSON], WITH_OPTIONAL_AGE, WITH_REQUIRED_AGE),
    "NONE": ([PERSON], NAME_AS_INT, None),
    # The candidate follows the latest version but not the first one.
    "BACKWARD_TRANSITIVE": ([PERSON, WITH_OPTIONAL_AGE], WITH_AGE_AND_CITY, WITH_REQUIRED_AGE),
    "FORWARD_TRANSITIVE": ([PERSON, NAME_OPTIONAL], WITH_REQUIRED_AGE, WITHOUT_NAME),
    "FULL_TRANSITIVE": ([PERSON, NAME_OPTIONAL], NAME_AND_AGE_OPTIONAL, WITHOUT_NAME),
}


@pytest.mark.parametrize("mode", list(EVOLUTIONS))
def test_evolution_under_each_mode(client: SchemaRegistryClient, mode: str) -> None:
    subject = f"evolution-{mode.lower()}-value"
    history, compatible, incompatible = EVOLUTIONS[mode]
    client.set_compatibility(subject, mode)
    assert client.get_compatibility(subject) == mode
    client.set_compatibility(subject, "NONE")
    for schema in history:
        client.register_schema(subject, avro(schema))
    if mode.endswith("_TRANSITIVE"):  # the plain level accepts what the transitive refuses
        client.set_compatibility(subject, mode.removesuffix("_TRANSITIVE"))
        assert client.test_compatibility(subject, avro(incompatible)) is True
    client.set_compatibility(subject, mode)
    if incompatible is not None:
        assert client.test_compatibility(subject, avro(incompatible)) is False
        with pytest.raises(SchemaRegistryError) as info:
            client.register_schema(subject, avro(incompatible))
        assert (info.value.http_status_code, info.value.error_code) == (409, 409)
    assert client.test_compatibility(subject, avro(compatible)) is True
    client.register_schema(subject, avro(compatible))
    assert client.get_latest_version(subject).version == len(history) + 1
