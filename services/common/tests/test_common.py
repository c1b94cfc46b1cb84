"""Common pieces: reference data, API keys, text folding, the embedded broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from phoihop_common.auth import ApiKeys, hash_key
from phoihop_common.config import ConfigError, Duration, commune_agency_code, load_reference
from phoihop_common.kafka import KafkaSettings, client_kwargs, ensure_topics
from phoihop_common.text import fold, nfc, tokens
from phoihop_embedded.broker import EmbeddedBroker
from phoihop_schemas.topics import ALL_TOPICS


def test_reference_derives_a_commune_committee_per_unit(config_dir: Path) -> None:
    ref = load_reference(config_dir)
    assert commune_agency_code("dac-khu-dao-ngoc") == "UBND_XA_DAC_KHU_DAO_NGOC"
    for unit in ref.units:
        assert commune_agency_code(unit.code) in ref.agency_codes
    assert ref.category("GIAO_THONG").agency == "SO_XAY_DUNG"
    assert ref.agency("SO_VH_TT_DL").name == "Sở Văn hóa, Thể thao và Du lịch"
    assert ref.sla.kinds["to_cao"].confidential_reporter is True
    assert ref.sla.kinds["to_cao"].answer.extensions == 2


def test_invalid_config_names_the_file(config_dir: Path) -> None:
    (config_dir / "categories.yaml").write_text("categories: [ {code: X", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"categories\.yaml"):
        load_reference(config_dir)


def test_duration_needs_exactly_one_unit() -> None:
    assert Duration(seconds=3).seconds == 3
    with pytest.raises(ValueError, match="exactly one"):
        Duration(days=1, working_days=1)
    with pytest.raises(ValueError, match="exactly one"):
        Duration()


def test_api_keys_are_matched_by_hash(config_dir: Path) -> None:
    keys = ApiKeys.load(config_dir / "api_keys.yaml")
    assert keys.agency_for("dev-SO_XAY_DUNG") == "SO_XAY_DUNG"
    assert keys.agency_for("dev-so_xay_dung") is None
    assert keys.agency_for(None) is None
    stored = [
        line
        for line in (config_dir / "api_keys.yaml").read_text("utf-8").splitlines()
        if not line.lstrip().startswith("#")
    ]
    assert not any("dev-" in line for line in stored)
    assert hash_key("a") != hash_key("b")


def test_folding_matches_with_and_without_diacritics() -> None:
    assert fold("Đường liên thôn") == "duong lien thon"
    assert fold(nfc("Đu\u031bo\u031b\u0300ng")) == "duong"
    assert tokens("Quốc lộ 3, ĐT.753") == ["quoc", "lo", "3", "dt", "753"]


def test_security_settings_reach_the_client() -> None:
    s = KafkaSettings(
        kafka_bootstrap="k:9093",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="ingest",
        kafka_sasl_password="secret",  # type: ignore[arg-type]
    )
    kw = client_kwargs(s)
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kw["sasl_plain_password"] == "secret"
    assert "ssl_context" not in kw


@pytest.mark.integration
def test_embedded_broker_creates_topics_and_carries_records(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    try:
        settings = KafkaSettings(kafka_bootstrap=broker.bootstrap)

        async def run() -> tuple[list[str], list[str], bytes]:
            created = await ensure_topics(settings)
            again = await ensure_topics(settings)
            admin = AIOKafkaAdminClient(**client_kwargs(settings))
            await admin.start()
            names = await admin.list_topics()
            await admin.close()
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
            await producer.start()
            await producer.send_and_wait(ALL_TOPICS[0].name, b"v\xe1", key=b"k")
            await producer.stop()
            consumer = AIOKafkaConsumer(
                ALL_TOPICS[0].name,
                bootstrap_servers=broker.bootstrap,
                auto_offset_reset="earliest",
                group_id="t",
            )
            await consumer.start()
            got = await consumer.getone()
            await consumer.stop()
            assert not again
            return created, names, got.value or b""

        created, names, value = asyncio.run(run())
        assert {t.name for t in ALL_TOPICS} == set(created)
        assert {t.name for t in ALL_TOPICS} <= set(names)
        assert value == b"v\xe1"
    finally:
        broker.stop()
    assert broker.process is not None
    assert broker.process.poll() is not None
