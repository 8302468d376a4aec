"""Sampling results at replay speed: a compact record and a decoder that checks it like the model.

Replaying years of a prefecture's sampling means validating millions of JSON lines, and the
pydantic model (:class:`~schemas.records.SamplingResult`) spends most of its time calling its
Python validators field by field and building model objects. :class:`SamplingDecoder` takes a short
cut for the lines that need nothing special and leaves every other line to the model:

1. msgspec decodes the line into a :class:`SamplingRecord` (C code: JSON syntax, field names and
   types, RFC 3339 date-times) — any failure, and the line goes to the model;
2. the catalogue and clock checks run once per record with plain lookups (region, industry,
   unified social credit code, event time, the passed/failed_items agreement; names normalised
   through the catalogue's memos) — any doubt (a value with surrounding spaces, a naive time, an
   unknown source), and the line goes to the model;
3. the record is normalised in place and returned.

Pydantic stays the single definition of what is valid and of every error message: the short cut
only accepts a line the model accepts, with equal values (``tests/unit/test_fastpath.py`` holds
the two together on generated and mutated lines), and it refuses nothing on its own. A line the
model accepts but the short cut does not is converted from the model (:meth:`SamplingRecord.from_model`).

:class:`SamplingRecord` has the fields of :class:`SamplingResult` under the same names, so the
detection engine reads either; it is a slotted struct, several times cheaper to build and hold.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, tzinfo

import msgspec

from .catalogue import Catalogue, default_catalogue
from .records import (
    CONTROL_CHARACTERS,
    LINE_CONTROLS,
    MAX_AGE,
    MAX_FUTURE_SKEW,
    SamplingResult,
    SamplingSource,
)
from .uscc import uscc_problem

__all__ = ["SamplingDecoder", "SamplingRecord", "TestItemRecord"]

_MAX_ID = 128  # SamplingResult.id max_length
_MEMO = 100_000  # checked values remembered per decoder and field (bounded)
# An optional field that the model makes nullable defaults to None here too (absent and null give
# the same value); one the model does not make nullable (``source``, ``failed_items``) is typed
# without None, so an explicit null fails the decode and the line goes to the model, which says why.


class TestItemRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One tested item (the fields of :class:`~schemas.records.TestItem`)."""

    __test__ = False  # not a pytest class

    name: str
    value: float | None = None
    limit: float | None = None
    unit: str | None = None
    passed: bool | None = None


class SamplingRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A validated sampling result as the detection engine holds it (see the module docstring).

    ``gc=False``: a record refers to strings, numbers and its own lists only, never back to itself,
    so the garbage collector need not track the millions a replay makes.
    """

    id: str
    sampled_at: datetime
    region: str
    industry: str
    product: str
    enterprise_id: str
    passed: bool
    inspector_id: str
    reported_at: datetime | None = None
    enterprise_name: str | None = None
    failed_items: list[str] = msgspec.field(default_factory=list)
    test_items: list[TestItemRecord] | None = None
    lab_id: str | None = None
    source: SamplingSource = SamplingSource.supervision_sampling

    @classmethod
    def from_model(cls, model: SamplingResult) -> SamplingRecord:
        """The record of a validated model (the values the model normalised, defaults filled in)."""
        tests = model.test_items
        return cls(
            id=model.id,
            sampled_at=model.sampled_at,
            region=model.region,
            industry=model.industry,
            product=model.product,
            enterprise_id=model.enterprise_id,
            passed=model.passed,
            inspector_id=model.inspector_id,
            reported_at=model.reported_at,
            enterprise_name=model.enterprise_name,
            failed_items=list(model.failed_items),
            test_items=None
            if tests is None
            else [TestItemRecord(t.name, t.value, t.limit, t.unit, t.passed) for t in tests],
            lab_id=model.lab_id,
            source=model.source,
        )


def _clean(text: str) -> bool:
    """Non-blank and already stripped (the model strips every string; the short cut never does)."""
    return bool(text) and text == text.strip()


def _one_line(text: str) -> bool:
    """No control character the model refuses in a one-line text (the printable test alone is cheaper)."""
    return text.isprintable() or LINE_CONTROLS.search(text) is None


#: a fraction of a second with more than six digits (anywhere in the line: a false hit only costs the
#: model's slower path). A comma as the decimal sign needs no look: msgspec refuses it, and the
#: line goes to the model anyway
_LONG_FRACTION = re.compile(rb"\.[0-9]{7}")


class SamplingDecoder:
    """``decoder(line)`` validates one JSON line as ``SamplingResult.model_validate_json`` does.

    Returns a :class:`SamplingRecord`; raises :class:`pydantic.ValidationError` for an invalid line
    (always the model's own). ``now`` is the validating clock: records later than it (beyond the
    allowed skew) or implausibly older are refused, as by the model.
    """

    def __init__(self, catalogue: Catalogue | None = None, *, now: datetime) -> None:
        self.catalogue = catalogue or default_catalogue()
        self._set_clock(now)
        self._decode = msgspec.json.Decoder(SamplingRecord).decode
        self._regions = frozenset(self.catalogue.region_codes)
        self._industries = frozenset(self.catalogue.industry_slugs)
        self._enterprises: dict[str, str] = {}  # spelling on the wire -> checked code
        self._products: dict[str, str] = {}  # spelling on the wire -> catalogue name
        self._inspectors: set[str] = set()  # inspector ids already found clean
        #: lines that went the model's way (valid but unusual, or invalid)
        self.slow = 0

    def _set_clock(self, now: datetime) -> None:
        from .records import validation_context

        if now.tzinfo is None:
            raise ValueError("now must be a timezone-aware datetime")
        self.now = now
        self._context = validation_context(self.catalogue, now)
        self._earliest = now - MAX_AGE
        self._latest = now + MAX_FUTURE_SKEW
        # the bounds in each UTC offset seen: comparing datetimes that share a tzinfo is cheap
        self._bounds: dict[tzinfo | None, tuple[datetime, datetime]] = {}

    def __call__(self, line: bytes | str, now: datetime | None = None) -> SamplingRecord:
        """Validate ``line``; ``now`` moves the validating clock (a live stream passes its clock)."""
        if now is not None and now != self.now:
            self._set_clock(now)
        if _LONG_FRACTION.search(line if isinstance(line, bytes) else line.encode()):
            return self._model(line)  # msgspec rounds sub-microsecond digits, the model truncates
        try:
            record = self._decode(line)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return self._model(line)
        return record if self._check(record) else self._model(line)

    #: ``decoder.decode(line)``: the same as ``decoder(line)``, a little cheaper to call per line (a
    #: bound method, where calling the instance looks ``__call__`` up each time)
    decode = __call__

    def _model(self, line: bytes | str) -> SamplingRecord:
        self.slow += 1
        return SamplingRecord.from_model(SamplingResult.model_validate_json(line, context=self._context))

    def _check(self, r: SamplingRecord) -> bool:
        """Check ``r`` like the model and normalise it in place; False: let the model decide."""
        when = r.sampled_at
        bounds = self._bounds.get(when.tzinfo)
        if bounds is None:
            zone = when.tzinfo
            if zone is None:
                return False
            bounds = self._bounds[zone] = (self._earliest.astimezone(zone), self._latest.astimezone(zone))
        if not bounds[0] <= when <= bounds[1]:
            return False
        reported = r.reported_at
        if reported is not None and (reported.tzinfo is None or reported < when or reported > self._latest):
            return False
        # every string non-blank (where the model says so) and already stripped: the model strips
        # every string, the short cut never does
        rid, product, inspector = r.id, r.product, r.inspector_id
        if not rid or rid != rid.strip() or len(rid) > _MAX_ID:
            return False
        if not rid.isascii() and not unicodedata.is_normalized("NFKC", rid):
            return False  # full-width letters or digits: the model writes the id half-width
        if not rid.isprintable() and CONTROL_CHARACTERS.search(rid):  # the test alone is cheaper
            return False
        if r.region not in self._regions or r.industry not in self._industries:
            return False
        canonical = self._products.get(product)  # the checked and normalised spellings seen
        if canonical is None:
            if not product or product != product.strip() or not _one_line(product):
                return False
            canonical = self.catalogue.normalise_product(product)
            if len(self._products) < _MEMO:
                self._products[product] = canonical
        if inspector not in self._inspectors:
            if not inspector or inspector != inspector.strip() or not _one_line(inspector):
                return False
            if len(self._inspectors) < _MEMO:
                self._inspectors.add(inspector)
        code = self._enterprises.get(r.enterprise_id)
        if code is None:
            raw = r.enterprise_id
            code = raw.upper()
            if raw != raw.strip() or uscc_problem(code) is not None:
                return False
            if len(self._enterprises) < _MEMO:
                self._enterprises[raw] = code
        r.enterprise_id = code
        name, lab = r.enterprise_name, r.lab_id
        if name is not None and (name != name.strip() or not _one_line(name)):
            return False
        if lab is not None and (lab != lab.strip() or not _one_line(lab)):
            return False
        if name == "":
            r.enterprise_name = None  # empty is absent, as in the model
        if lab == "":
            r.lab_id = None
        raw_items = r.failed_items
        if not raw_items:
            if not r.passed:
                return False  # a failure must name its items: the model says so
        elif r.passed:
            return False  # items listed on a pass: the model says so
        else:
            normalise = self.catalogue.normalise_item
            items: list[str] = []
            for raw_item in raw_items:
                if not _clean(raw_item) or not _one_line(raw_item):
                    return False
                item = normalise(raw_item)
                if not item:
                    return False
                if item not in items:
                    items.append(item)
            r.failed_items = items
        tests = r.test_items
        if tests is not None:
            if not self._check_tests(tests, r.failed_items):
                return False
            if not tests:
                r.test_items = None  # an empty list is absent, as in the model
        r.product = canonical
        return True

    def _check_tests(self, tests: list[TestItemRecord], failed_items: list[str]) -> bool:
        normalise = self.catalogue.normalise_item
        for t in tests:
            if not _clean(t.name) or not _one_line(t.name):
                return False
            name = normalise(t.name)
            t.name = name
            unit = t.unit
            if unit is not None and (unit != unit.strip() or not _one_line(unit)):
                return False
            if unit == "":
                t.unit = None
            if t.passed is False and name not in failed_items:
                return False  # failed but not listed in failed_items: the model says so
        return True
