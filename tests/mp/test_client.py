"""MPClient through the real MPRester against the local MP server (tests/mp/conftest.py)."""

from __future__ import annotations

import json
import logging
import math

import pytest
from emmet.core.summary import SummaryDoc
from emmet.core.vasp.material import MaterialsDoc
from mp_api.client.core.settings import MAPI_CLIENT_SETTINGS
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from crystal_atomate.mp.client import MPClient, MPQuery, RetryPolicy, StructureOrigin
from crystal_atomate.mp.errors import (
    MPAuthError,
    MPInvalidIdError,
    MPKeyMissingError,
    MPNotFoundError,
    MPOfflineError,
    MPRateLimitError,
    MPRequestError,
)
from crystal_atomate.testing.mp_server import CORE, DATA, SUMMARY, VALID_KEY, MPServer

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
#: Requests one call makes through 429s: mp-api's session tries once plus MAX_RETRIES times.
PER_CALL = MAPI_CLIENT_SETTINGS.MAX_RETRIES + 1


def conventional_a(structure) -> float:
    return SpacegroupAnalyzer(structure).get_conventional_standard_structure().lattice.a


@pytest.mark.parametrize(
    ("name", "model"),
    [("materials_core.json", MaterialsDoc), ("materials_summary.json", SummaryDoc)],
)
def test_fixture_documents_have_the_api_shape(name: str, model: type) -> None:
    """The server's documents validate as the emmet-core models MPRester decodes them into."""
    docs = json.loads((DATA / name).read_text())
    assert [str(model.model_validate(d).material_id) for d in docs] == [
        "mp-1265",
        "mp-149",
        "mp-165",
    ]


def test_get_structure_by_id(mp_server: MPServer) -> None:
    record = MPClient(retry=FAST).get_structure("mp-1265")

    assert (record.material_id, record.formula, record.nsites) == ("mp-1265", "MgO", 2)
    assert record.structure.lattice.a == pytest.approx(4.25 / math.sqrt(2), abs=1e-6)
    assert conventional_a(record.structure) == pytest.approx(4.25, abs=1e-6)
    assert record.origin.material_id == "mp-1265"
    assert record.origin.db_version == "2025.09.25"
    assert record.origin.endpoint == mp_server.url
    assert record.origin.retrieved_at is not None and not record.from_cache
    core = [r for r in mp_server.requests if r.path == CORE]
    assert [(r.params["material_ids"], r.api_key) for r in core] == [("mp-1265", VALID_KEY)]


def test_origin_embeds_as_json(mp_server: MPServer) -> None:
    origin = MPClient(retry=FAST).get_structure("mp-149").origin
    again = StructureOrigin.model_validate_json(origin.model_dump_json())
    assert again == origin and again.source == "mp"


def test_material_id_is_normalised_and_checked(mp_server: MPServer) -> None:
    record = MPClient(retry=FAST).get_structure(" MP-149 ")
    assert (record.material_id, record.formula) == ("mp-149", "Si")
    assert conventional_a(record.structure) == pytest.approx(5.469, abs=1e-6)

    with pytest.raises(MPInvalidIdError, match="'foo' is not a Materials Project id"):
        MPClient(retry=FAST).get_structure("foo")
    assert mp_server.hits(CORE) == 1


def test_search_by_formula(mp_server: MPServer) -> None:
    records = MPClient(retry=FAST).search_structures(MPQuery(formula="Si"))

    assert [(r.material_id, r.nsites, r.is_stable) for r in records] == [
        ("mp-149", 2, True),
        ("mp-165", 4, False),
    ]
    assert records[1].structure.lattice.c == pytest.approx(6.33, abs=1e-6)
    assert records[1].energy_above_hull == pytest.approx(0.011)
    sent = mp_server.requests[-1]
    assert sent.path == SUMMARY
    assert (sent.params["formula"], sent.params["deprecated"], sent.params["_limit"]) == (
        "Si", "False", "50",
    )


@pytest.mark.parametrize(
    ("query", "expected", "params"),
    [
        (MPQuery(chemsys="Si", stable=True), ["mp-149"], {"chemsys": "Si", "is_stable": "True"}),
        (MPQuery(band_gap_min=1.0), ["mp-1265"], {"band_gap_min": "1.0"}),
        (
            MPQuery(band_gap_min=0.3, band_gap_max=1.0),
            ["mp-149", "mp-165"],
            {"band_gap_max": "1.0"},
        ),
        (MPQuery(max_sites=2), ["mp-1265", "mp-149"], {"nsites_min": "1", "nsites_max": "2"}),
        (
            MPQuery(energy_above_hull_max=0.005),
            ["mp-1265", "mp-149"],
            {"energy_above_hull_max": "0.005"},
        ),
        (MPQuery(formula="MgO", limit=1), ["mp-1265"], {"_limit": "1"}),
    ],
)
def test_search_filters(
    mp_server: MPServer, query: MPQuery, expected: list[str], params: dict[str, str]
) -> None:
    records = MPClient(retry=FAST).search_structures(query)

    assert [r.material_id for r in records] == expected
    assert params.items() <= mp_server.requests[-1].params.items()


def test_no_key(mp_server: MPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MP_API_KEY")
    with pytest.raises(MPKeyMissingError, match="set MP_API_KEY"):
        MPClient(retry=FAST).get_structure("mp-149")
    assert mp_server.requests == []


def test_bad_key_is_401(mp_server: MPServer) -> None:
    wrong = "0" * 32
    with pytest.raises(
        MPAuthError, match=r"refused the API key in MP_API_KEY \(HTTP 401\)"
    ) as info:
        MPClient(api_key=wrong, retry=FAST).get_structure("mp-149")
    assert wrong not in str(info.value)
    assert mp_server.hits(CORE) == 1


def test_malformed_key_keeps_mp_api_message(mp_server: MPServer) -> None:
    with pytest.raises(MPRequestError, match="32 characters"):
        MPClient(api_key="short", retry=FAST).get_structure("mp-149")


def test_unknown_id_empty_data(mp_server: MPServer) -> None:
    with pytest.raises(MPNotFoundError, match="mp-999999 is not in the Materials Project database"):
        MPClient(retry=FAST).get_structure("mp-999999")


def test_unknown_id_404(mp_server: MPServer) -> None:
    mp_server.fail(CORE, 404, times=1)
    with pytest.raises(MPNotFoundError, match=r"mp-149 was not found .*HTTP 404"):
        MPClient(retry=FAST).get_structure("mp-149")


def test_rate_limited_then_served(mp_server: MPServer) -> None:
    """More 429s than mp-api's retries absorb: our back-off makes a second call that succeeds."""
    mp_server.fail(CORE, 429, times=PER_CALL + 1)

    record = MPClient(retry=FAST).get_structure("mp-149")

    assert record.formula == "Si"
    assert mp_server.hits(CORE) == PER_CALL + 2


def test_rate_limit_is_bounded(mp_server: MPServer) -> None:
    mp_server.fail(CORE, 429)
    with pytest.raises(MPRateLimitError, match="kept answering 429"):
        MPClient(retry=RetryPolicy(attempts=2, base_delay=0.01)).get_structure("mp-149")
    assert mp_server.hits(CORE) == 2 * PER_CALL


def test_retry_delays_double_up_to_the_cap() -> None:
    assert list(RetryPolicy(attempts=5, base_delay=2, max_delay=10).delays()) == [2, 4, 8, 10]


def test_offline(mp_server: MPServer) -> None:
    mp_server.stop()
    with pytest.raises(
        MPOfflineError, match=f"Cannot reach the Materials Project at {mp_server.url} for mp-149"
    ):
        MPClient(retry=FAST).get_structure("mp-149")
    with pytest.raises(MPOfflineError, match=r"the search \(formula=Si\)"):
        MPClient(retry=FAST).search_structures(MPQuery(formula="Si"))


def test_offline_after_heartbeat(mp_server: MPServer) -> None:
    """The rester is open (heartbeat cached) when the network goes: still an MPOfflineError."""
    client = MPClient(retry=FAST)
    client.get_structure("mp-149")
    mp_server.stop()
    with pytest.raises(MPOfflineError, match="mp-1265"):
        client.get_structure("mp-1265")


def test_key_never_logged(
    mp_server: MPServer, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    client = MPClient(retry=FAST)
    client.get_structure("mp-149")
    mp_server.fail(CORE, 429, times=PER_CALL)
    client.get_structure("mp-1265")
    mp_server.fail(CORE, 401, times=1)
    errors = []
    with pytest.raises(MPAuthError) as info:
        client.get_structure("mp-165")
    errors.append(str(info.value))
    mp_server.stop()
    with pytest.raises(MPOfflineError) as info:
        client.get_structure("mp-165")
    errors.append(str(info.value))

    out, err = capfd.readouterr()
    assert "Rate limited" in caplog.text and "Opening MPRester" in caplog.text
    for text in (caplog.text, out, err, repr(client), *errors):
        assert VALID_KEY not in text
