"""Checkpointed stage state carries the version of its shape; a worker refuses another version."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import io
import json
import pickle
from datetime import datetime
from typing import Any

import pydantic
import pytest

from detectors.engine import EngineConfig
from qualitywatch.evaluation import SimConfig, simulate
from schemas import PatrolReport, SamplingResult, default_catalogue
from stream.checkpoint import (
    STATE_VERSION,
    CheckpointSettingsError,
    CheckpointVersionError,
    decode_state,
    encode_state,
    state_made_with,
    state_version,
)
from stream.codec import Rejection, decode_record
from stream.stages import CellWeekPartition, PatrolPartition, SamplingPartition, StageContext

CAT = default_catalogue()
NOW = datetime.fromisoformat("2030-01-01T00:00:00+00:00")
#: the digest of the state's shape (below) for each STATE_VERSION; a new version records its own (a
#: version no release has shipped yet may change its digest in place)
SHAPES = {2: "62644e2c0d832005"}


def test_state_round_trips_with_its_version() -> None:
    blob = encode_state({"a": [1, 2.5]})
    assert state_version(blob) == STATE_VERSION
    assert decode_state(blob) == {"a": [1, 2.5]}


@pytest.mark.parametrize(
    ("blob", "version"),
    [
        (pickle.dumps({"a": 1}), 1),  # written before the version was recorded
        (b"QW-STATE" + (STATE_VERSION + 1).to_bytes(4, "big") + pickle.dumps({"a": 1}), STATE_VERSION + 1),
    ],
)
def test_another_version_is_refused_with_what_to_do(blob: bytes, version: int) -> None:
    with pytest.raises(CheckpointVersionError) as err:
        decode_state(blob, "qw.sampling-results[2]")
    message = str(err.value)
    assert message.startswith(f"qw.sampling-results[2]: the checkpoint holds stage state version {version}")
    assert f"this release reads version {STATE_VERSION}" in message
    assert "fresh checkpoint store" in message and "replay the input topics" in message


class _ShapePickler(pickle.Pickler):
    """Pickles to nowhere, noting each project class met and the attributes its pickle holds."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL)
        self.shapes: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if cls.__module__.split(".")[0] in ("detectors", "stream", "schemas") and not isinstance(obj, type):
            self.shapes.add(f"{cls.__module__}.{cls.__qualname__}({','.join(sorted(_fields(obj)))})")
        return NotImplemented


def _fields(obj: Any) -> list[str]:
    """The names under which ``obj``'s pickle holds its state (an enum: its members)."""
    cls = type(obj)
    if isinstance(obj, enum.Enum):
        return [m.name for m in cls]
    if dataclasses.is_dataclass(obj):
        return [f.name for f in dataclasses.fields(obj)]
    if isinstance(obj, pydantic.BaseModel):
        return list(cls.model_fields)
    fields = getattr(cls, "__struct_fields__", None)  # a msgspec struct
    if fields is not None:
        return list(fields)
    state = obj.__getstate__()
    if isinstance(state, tuple):  # (__dict__ or None, the slots)
        return [k for part in state if part for k in part]
    return list(state) if isinstance(state, dict) else [type(state).__name__]


def _states() -> list[Any]:
    """One partition of each kind after a year and a half of simulated input (every detector built,
    fitted and holding history)."""
    sim = simulate(SimConfig(seed=5, years=1, warmup_weeks=26))
    ctx = StageContext.create(CAT, EngineConfig(epoch=datetime(2021, 1, 4, tzinfo=CAT.zone)))
    sampling, patrols, cells = SamplingPartition(ctx), PatrolPartition(ctx), CellWeekPartition(ctx, 0, 1)
    for raw in sim.records:
        record = decode_record(json.dumps(raw).encode(), SamplingResult, CAT, NOW)
        if isinstance(record, Rejection):
            continue
        for cell in sampling.submit(record)[2]:
            cells.submit(cell)
    for raw in sim.patrols:
        report = decode_record(json.dumps(raw).encode(), PatrolReport, CAT, NOW)
        if isinstance(report, PatrolReport):
            patrols.submit(report)
    return [sampling, patrols, cells]


def test_the_state_shape_has_not_changed_without_a_new_version() -> None:
    pickler = _ShapePickler()
    for state in _states():
        pickler.dump(state)
    shapes = sorted(pickler.shapes)
    digest = hashlib.sha256("\n".join(shapes).encode()).hexdigest()[:16]
    assert {s.split("(")[0] for s in shapes} >= {
        "detectors.engine.RegionStage",
        "detectors.engine.IndustryStage",
        "detectors.engine.SystemicStage",
        "detectors.engine.PatrolStage",
        "detectors.enterprise_repeat.EnterpriseRepeatDetector",
        "detectors.enterprise_outlier.EnterpriseOutlierDetector",
        "detectors.forest.Forest",
        "detectors.rate.RateChangeDetector",
        "detectors.systemic.SystemicItemDetector",
    }
    new = STATE_VERSION if STATE_VERSION not in SHAPES else STATE_VERSION + 1
    assert SHAPES.get(STATE_VERSION) == digest, (
        "the checkpointed stage state changed shape: set STATE_VERSION in stream/checkpoint.py to "
        f"{new}, say so in the changelog and record SHAPES[{new}] = {digest!r} here. The shape now:\n"
        + "\n".join(shapes)
    )


def test_a_checkpoint_records_the_settings_its_state_was_made_with() -> None:
    made = StageContext.create(CAT, EngineConfig(epoch=NOW, seed=0)).made_with()
    blob = encode_state({"a": 1}, made)
    assert state_made_with(blob) == made
    assert decode_state(blob, made_with=made) == {"a": 1}
    assert state_made_with(encode_state({"a": 1})) is None  # written before the settings were recorded
    assert decode_state(encode_state({"a": 1}), made_with=made) == {"a": 1}  # nothing to compare


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"seed": 7}, "QW_SEED (0 in the checkpoint, 7 now)"),
        ({"catalogue": dataclasses.replace(CAT, targets={**CAT.targets, "x": 0.5})}, "QW_CATALOGUE_PATH"),
        ({"catalogue": dataclasses.replace(CAT, regions=CAT.regions[:-1])}, "QW_CATALOGUE_PATH"),
    ],
)
def test_a_checkpoint_made_with_another_catalogue_or_seed_is_refused_with_what_to_do(
    change: dict[str, Any], named: str
) -> None:
    before = StageContext.create(CAT, EngineConfig(epoch=NOW, seed=0)).made_with()
    cat = change.get("catalogue", CAT)
    now = StageContext.create(cat, EngineConfig(epoch=NOW, seed=change.get("seed", 0))).made_with()
    with pytest.raises(CheckpointSettingsError) as err:
        decode_state(encode_state({"a": 1}, before), "qw.sampling-results[2]", made_with=now)
    message = str(err.value)
    assert message.startswith("qw.sampling-results[2]: the checkpoint was made with another")
    assert named in message
    assert ("QW_SEED" in message) == ("seed" in change)
    assert ("QW_CATALOGUE_PATH" in message) == ("catalogue" in change)
    assert "fresh checkpoint store" in message and "replay the input topics" in message


def test_the_same_catalogue_from_another_file_is_the_same() -> None:
    moved = dataclasses.replace(CAT, source="/elsewhere/catalogue.yaml")
    config = EngineConfig(epoch=NOW, seed=0)
    assert StageContext.create(moved, config).made_with() == StageContext.create(CAT, config).made_with()
