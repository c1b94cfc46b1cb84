"""Scale-out arithmetic and replica naming: pure functions on hand-made inputs."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from bench.profile import cpu_per_rec
from bench.replicas import compare, fold_replicas
from phoihop_embedded.stack import SERVICES, Stack, parse_replicas, replica_names, service_of


def test_replica_names_keep_the_first_under_the_service_name() -> None:
    assert replica_names("routing", 1) == ["routing"]
    assert replica_names("routing", 3) == ["routing", "routing#2", "routing#3"]
    assert service_of("routing#2") == "routing"
    assert service_of("notify") == "notify"


def test_stack_lists_replicas_after_their_service(tmp_path: Any) -> None:
    stack = Stack(data_dir=tmp_path, replicas={"routing": 2, "audit": 2})
    assert stack.process_names() == ["audit", "audit#2", "routing", "routing#2", "notify", "ingest"]
    stack.ports = {name: 9000 + i for i, name in enumerate(stack.process_names())}
    stack.kafka_bootstrap = "127.0.0.1:1"
    first, second = stack.service_env("routing"), stack.service_env("routing#2")
    assert first["PHOIHOP_ROUTING_DATA_DIR"] != second["PHOIHOP_ROUTING_DATA_DIR"]
    assert first["PHOIHOP_ROUTING_PORT"] != second["PHOIHOP_ROUTING_PORT"]
    # replicas of a service share its database
    a1, a2 = stack.service_env("audit"), stack.service_env("audit#2")
    assert a1["PHOIHOP_AUDIT_DATABASE_URL"] == a2["PHOIHOP_AUDIT_DATABASE_URL"]


def test_parse_replicas() -> None:
    assert parse_replicas("routing=2, notify=2") == {"routing": 2, "notify": 2}
    assert parse_replicas("") == {}
    for bad in ("broker=2", "routing=0", "routing", "routing=x"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_replicas(bad)


def test_fold_replicas_sums_a_services_processes() -> None:
    cpu = {
        "wall_s": 10.0,
        "loadavg": (1.0, 1.0, 1.0),
        "processes": {
            "routing": {"cpu_s": 1.0, "core_share": 0.1},
            "routing#2": {"cpu_s": 2.0, "core_share": 0.2},
            "ingest": {"cpu_s": 0.5, "core_share": 0.05},
            "broker": {"cpu_s": 3.0, "core_share": 0.3},
        },
    }
    out = fold_replicas(cpu)
    assert out["processes"]["routing"] == {"cpu_s": 3.0, "core_share": 0.3}
    assert out["processes"]["ingest"] == {"cpu_s": 0.5, "core_share": 0.05}
    assert out["replicas"] == {"routing": 2}
    assert out["wall_s"] == 10.0
    per_rec = cpu_per_rec(out, 100, SERVICES)
    assert per_rec["routing"] == 30.0
    assert per_rec["services_total"] == 35.0
    assert "replicas" not in fold_replicas({"processes": {"routing": {"cpu_s": 1.0}}})


def _run(workers: int, rate: float, total: float, *, complete: bool = True) -> dict[str, Any]:
    return {
        "workers": workers,
        "delivered_per_s": rate,
        "complete": complete,
        "p50_ms": 100.0 * workers,
        "p99_ms": 400.0,
        "cpu_ms_per_rec": {"routing": total / 2, "notify": total / 2, "services_total": total},
    }


def test_compare_two_workers_to_one() -> None:
    out = compare([_run(1, 50.0, 10.0), _run(2, 49.0, 12.0)])
    assert out["workers"] == [1, 2]
    assert out["delivered_per_s_ratio"] == 0.98
    assert out["p50_ratio"] == 2.0
    assert out["p99_ratio"] == 1.0
    assert out["cpu_ms_per_rec_ratio"]["services_total"] == 1.2
    assert out["cpu_ms_per_rec_delta"]["services_total"] == 2.0
    assert out["rate_dropped"] is False
    assert compare([_run(1, 50.0, 10.0), _run(2, 40.0, 12.0)])["rate_dropped"] is True
    assert compare([_run(1, 50, 10), _run(2, 50, 12, complete=False)])["rate_dropped"] is True
    assert compare([_run(1, 50.0, 10.0)]) == {}
