"""The reference catalogue: counties, industries, hazard items, products and policy targets.

The catalogue ships as data (``schemas/data/kizilsu.yaml``) and is loaded from a path, so another
prefecture can bring its own file of the same shape. Name normalisation (case, spacing, Chinese and
English aliases) lives here because the aliases are part of the data.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

__all__ = [
    "Catalogue",
    "CatalogueError",
    "HazardItem",
    "Industry",
    "Region",
    "default_catalogue",
    "load_catalogue",
    "normalise_text",
]

DEFAULT_PATH = Path(__file__).with_name("data") / "kizilsu.yaml"

Category = Literal["industrial", "food_agri"]

_MEMO_LIMIT = 100_000  # spellings remembered per catalogue (bounded: free text is unbounded)
_SPACES = re.compile(r"[\s_\-]+")
_NON_WORD = re.compile(r"[^\w\s]", re.UNICODE)


class CatalogueError(ValueError):
    """The catalogue file is missing, malformed or inconsistent."""


def normalise_text(text: str) -> str:
    """Fold a free name to a comparable key: NFKC, case-folded, runs of space/``_``/``-`` to one ``_``.

    ``" Aflatoxin  B₁ "`` and ``"aflatoxin_b1"`` fold to the same key; Chinese characters are kept.
    """
    folded = unicodedata.normalize("NFKC", text).casefold().strip()
    return _SPACES.sub("_", folded).strip("_")


def _loose_key(text: str) -> str:
    """A looser key that also drops punctuation: ``铅(以Pb计)`` and ``铅（以Pb计）`` meet here."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub("_", _NON_WORD.sub(" ", folded)).strip("_")


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name_zh: str
    name_en: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Industry:
    slug: str
    name_zh: str
    name_en: str
    category: Category
    hazard_items: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HazardItem:
    name: str
    name_zh: str
    name_en: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Catalogue:
    """An immutable, hashable view of one prefecture's reference data."""

    prefecture_code: str
    prefecture_name_zh: str
    prefecture_name_en: str
    timezone: str
    targets: Mapping[str, float]
    regions: tuple[Region, ...]
    industries: tuple[Industry, ...]
    hazard_items: tuple[HazardItem, ...]
    products: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = ""
    #: the time zone weeks are counted in (derived from ``timezone``)
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regions", {r.code: r for r in self.regions})
        object.__setattr__(self, "_industries", {i.slug: i for i in self.industries})
        items: dict[str, str] = {}
        for item in self.hazard_items:
            for spelling in (item.name, item.name_zh, item.name_en, *item.aliases):
                items.setdefault(normalise_text(spelling), item.name)
                items.setdefault(_loose_key(spelling), item.name)
        object.__setattr__(self, "_item_keys", items)
        products: dict[str, str] = {}
        for name, aliases in self.products.items():
            for spelling in (name, *aliases):
                products.setdefault(normalise_text(spelling), name)
                products.setdefault(_loose_key(spelling), name)
        object.__setattr__(self, "_product_keys", products)
        names: dict[str, str] = {}
        for r in self.regions:
            for spelling in (r.code, r.name_zh, r.name_en, *r.aliases):
                names.setdefault(normalise_text(spelling), r.code)
        object.__setattr__(self, "_region_names", names)
        inames: dict[str, str] = {}
        for i in self.industries:
            for spelling in (i.slug, i.name_zh, i.name_en):
                inames.setdefault(normalise_text(spelling), i.slug)
        object.__setattr__(self, "_industry_names", inames)
        for i in self.industries:
            if i.category not in self.targets:
                raise CatalogueError(f"industry {i.slug!r}: category {i.category!r} has no policy target")
        object.__setattr__(self, "zone", ZoneInfo(self.timezone))
        object.__setattr__(self, "_item_memo", {})
        object.__setattr__(self, "_product_memo", {})

    def __hash__(self) -> int:
        return hash((self.prefecture_code, self.source, len(self.regions), len(self.industries)))

    # -- lookups ---------------------------------------------------------------------------------
    @property
    def region_codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.regions)

    @property
    def industry_slugs(self) -> tuple[str, ...]:
        return tuple(i.slug for i in self.industries)

    def region(self, code: str) -> Region | None:
        return self._regions.get(code)  # type: ignore[attr-defined, no-any-return]

    def industry(self, slug: str) -> Industry | None:
        return self._industries.get(slug)  # type: ignore[attr-defined, no-any-return]

    def resolve_region(self, text: str) -> str | None:
        """A region code from a code, Chinese or English name or alias; ``None`` if unknown."""
        return self._region_names.get(normalise_text(text))  # type: ignore[attr-defined, no-any-return]

    def resolve_industry(self, text: str) -> str | None:
        """An industry slug from a slug, Chinese or English name; ``None`` if unknown."""
        return self._industry_names.get(normalise_text(text))  # type: ignore[attr-defined, no-any-return]

    def target_for_industry(self, slug: str) -> float:
        industry = self.industry(slug)
        if industry is None:
            raise KeyError(slug)
        return float(self.targets[industry.category])

    def is_known_item(self, name: str) -> bool:
        return name in self._item_keys.values()  # type: ignore[attr-defined]

    def normalise_item(self, name: str) -> str:
        """Canonical hazard-item name; an unknown item keeps its folded spelling (and is still tracked)."""
        memo: dict[str, str] = self._item_memo  # type: ignore[attr-defined]
        found = memo.get(name)
        if found is None:
            key = normalise_text(name)
            found = self._item_keys.get(key) or self._item_keys.get(_loose_key(name)) or key  # type: ignore[attr-defined]
            if len(memo) < _MEMO_LIMIT:
                memo[name] = found
        return found

    def normalise_product(self, name: str) -> str:
        """Canonical product name from the catalogue's aliases, else the folded spelling."""
        memo: dict[str, str] = self._product_memo  # type: ignore[attr-defined]
        found = memo.get(name)
        if found is None:
            key = normalise_text(name)
            found = self._product_keys.get(key) or self._product_keys.get(_loose_key(name)) or key  # type: ignore[attr-defined]
            if len(memo) < _MEMO_LIMIT:
                memo[name] = found
        return found

    def items_for_industry(self, slug: str) -> tuple[str, ...]:
        industry = self.industry(slug)
        return industry.hazard_items if industry else ()


def _require(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise CatalogueError(f"{where}: missing key {key!r}")
    return data[key]


def _mapping(value: Any, where: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise CatalogueError(f"{where}: must be a mapping, not {_kind(value)}")
    return value


def _list(value: Any, where: str, *, empty: bool = True) -> list[Any]:
    if not isinstance(value, list):
        raise CatalogueError(f"{where}: must be a list, not {_kind(value)}")
    if not value and not empty:
        raise CatalogueError(f"{where}: must not be empty")
    return value


def _text(value: Any, where: str) -> str:
    """A name or code: a string, or a number YAML read from an unquoted code (``653001``)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float) or not str(value).strip():
        raise CatalogueError(f"{where}: must be a non-empty text, not {_kind(value)}")
    return str(value)


def _texts(value: Any, where: str) -> tuple[str, ...]:
    """An optional list of names (``aliases``, ``hazard_items``); null is an empty list."""
    if value is None:
        return ()
    return tuple(_text(v, f"{where}[{n}]") for n, v in enumerate(_list(value, where)))


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _unique(values: list[tuple[str, str]], what: str) -> None:
    """Refuse a code or slug listed twice: the second entry would silently replace the first."""
    first: dict[str, str] = {}
    for where, value in values:
        if value in first:
            raise CatalogueError(f"{where}: {what} {value!r} is listed twice (also {first[value]})")
        first[value] = where


def _one_county_per_name(regions: list[Region]) -> None:
    """Refuse a code, name or alias that folds to a spelling of another county: it would resolve to
    whichever county is listed first."""
    first: dict[str, tuple[str, str]] = {}  # folded spelling -> (where, code)
    for n, r in enumerate(regions):
        spellings = [("code", r.code), ("name_zh", r.name_zh), ("name_en", r.name_en)]
        spellings += [(f"aliases[{k}]", alias) for k, alias in enumerate(r.aliases)]
        for name, spelling in spellings:
            where = f"regions[{n}].{name}"
            other = first.setdefault(normalise_text(spelling), (where, r.code))
            if other[1] != r.code:
                raise CatalogueError(
                    f"{where}: {spelling!r} also names {other[0]} (county {other[1]}): "
                    "a name must point to one county"
                )


def _target(name: Any, value: Any) -> float:
    where = f"targets.{name}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CatalogueError(f"{where}: {_kind(value)} is not a pass rate in (0, 1]")
    rate = float(value)
    if not 0.0 < rate <= 1.0:
        raise CatalogueError(f"{where}: {rate} is not a pass rate in (0, 1]")
    return rate


def catalogue_from_dict(data: Mapping[str, Any], source: str = "") -> Catalogue:
    """Build a catalogue from parsed YAML/JSON, with errors that name the offending entry."""
    pref = _mapping(_require(data, "prefecture", "catalogue"), "prefecture")
    regions_raw = _list(_require(data, "regions", "catalogue"), "regions", empty=False)
    regions = []
    for n, raw in enumerate(regions_raw):
        where = f"regions[{n}]"
        r = _mapping(raw, where)
        regions.append(
            Region(
                code=_text(_require(r, "code", where), f"{where}.code"),
                name_zh=_text(_require(r, "name_zh", where), f"{where}.name_zh"),
                name_en=_text(_require(r, "name_en", where), f"{where}.name_en"),
                aliases=_texts(r.get("aliases"), f"{where}.aliases"),
            )
        )
    _unique([(f"regions[{n}].code", r.code) for n, r in enumerate(regions)], "region code")
    _one_county_per_name(regions)
    items_raw = _mapping(_require(data, "hazard_items", "catalogue"), "hazard_items")
    items = []
    for name, raw in items_raw.items():
        where = f"hazard_items.{name}"
        v = _mapping(raw, where)
        items.append(
            HazardItem(
                name=_text(name, where),
                name_zh=_text(_require(v, "name_zh", where), f"{where}.name_zh"),
                name_en=_text(_require(v, "name_en", where), f"{where}.name_en"),
                aliases=_texts(v.get("aliases"), f"{where}.aliases"),
            )
        )
    industries_raw = _list(_require(data, "industries", "catalogue"), "industries", empty=False)
    industries = []
    for n, raw in enumerate(industries_raw):
        where = f"industries[{n}]"
        i = _mapping(raw, where)
        industries.append(
            Industry(
                slug=_text(_require(i, "slug", where), f"{where}.slug"),
                name_zh=_text(_require(i, "name_zh", where), f"{where}.name_zh"),
                name_en=_text(_require(i, "name_en", where), f"{where}.name_en"),
                category=_text(_require(i, "category", where), f"{where}.category"),  # type: ignore[arg-type]
                hazard_items=_texts(i.get("hazard_items"), f"{where}.hazard_items"),
            )
        )
    _unique([(f"industries[{n}].slug", i.slug) for n, i in enumerate(industries)], "industry slug")
    known_items = {item.name for item in items}
    for ind in industries:
        for item in ind.hazard_items:
            if item not in known_items:
                raise CatalogueError(f"industries.{ind.slug}: hazard item {item!r} is not in hazard_items")
    products = {}
    for name, raw in _mapping(data.get("products") or {}, "products").items():
        where = f"products.{name}"
        v = _mapping(raw or {}, where)
        products[_text(name, where)] = _texts(v.get("aliases"), f"{where}.aliases") + (
            (_text(v["name_zh"], f"{where}.name_zh"),) if "name_zh" in v else ()
        )
    targets = {
        str(k): _target(k, v) for k, v in _mapping(_require(data, "targets", "catalogue"), "targets").items()
    }
    timezone = _text(data.get("timezone", "Asia/Shanghai"), "timezone")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CatalogueError(
            f"timezone: {timezone!r} is not a known time zone (an IANA name such as Asia/Shanghai)"
        ) from exc
    return Catalogue(
        prefecture_code=_text(_require(pref, "code", "prefecture"), "prefecture.code"),
        prefecture_name_zh=str(pref.get("name_zh", "")),
        prefecture_name_en=str(pref.get("name_en", "")),
        timezone=timezone,
        targets=targets,
        regions=tuple(regions),
        industries=tuple(industries),
        hazard_items=tuple(items),
        products=products,
        source=source,
    )


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Load a catalogue from a YAML (or JSON) file; the packaged Kizilsu catalogue when ``path`` is None."""
    return _load_cached(str(path) if path is not None else str(DEFAULT_PATH))


@cache
def _load_cached(path: str) -> Catalogue:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise CatalogueError(f"cannot read catalogue {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise CatalogueError(
            f"catalogue {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from exc
    except yaml.YAMLError as exc:
        raise CatalogueError(f"catalogue {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise CatalogueError(f"catalogue {path}: top level must be a mapping")
    return catalogue_from_dict(data, source=path)


def default_catalogue() -> Catalogue:
    """The packaged default catalogue (Kizilsu, 653000)."""
    return load_catalogue(None)
