"""The landing sources, declared as data: one schema per source, shared by the
generator (which writes them) and bronze ingestion (which enforces them).

Every record carries `event_id` (the deduplication key) and `event_ts` (UTC,
ISO-8601). Fields marked `pii` never reach bronze; fields marked `pseudonymize` are
replaced by a keyed hash there.

Each field also declares what a plausible value is (a range, the characters and length
of its strings, how many items its array holds, a bound looked up in another source);
ingestion quarantines a record that breaks one with reason `implausible_value` and the
field's name. The bounds are generous for real data and always hold for the generator's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from pyspark.sql import types as T

DEVICES = ("tv", "mobile", "tablet", "web")
PLANS = ("basic", "standard", "premium")
KINDS = ("movie", "series")
GENRES = (
    "action",
    "adventure",
    "animation",
    "comedy",
    "crime",
    "documentary",
    "drama",
    "family",
    "fantasy",
    "horror",
    "kids",
    "mystery",
    "reality",
    "romance",
    "scifi",
    "thriller",
)
ARTWORK_STYLES = ("close_up", "ensemble", "action_shot", "minimal", "dark", "bright")
PAGE_ROWS = ("top_picks", "trending", "continue_watching", "because_you_watched", "new_releases")
# region code -> (country, UTC offset in hours used for local time)
REGIONS = {
    "us-east": ("US", -5),
    "us-west": ("US", -8),
    "ca": ("CA", -5),
    "mx": ("MX", -6),
    "br": ("BR", -3),
    "gb": ("GB", 0),
    "de": ("DE", 1),
    "fr": ("FR", 1),
    "es": ("ES", 1),
    "in": ("IN", 5),
    "jp": ("JP", 9),
    "kr": ("KR", 9),
    "au": ("AU", 10),
}
# Marketing segments: groups of genres. A member's segment is the group of the genre
# they watch most (the generator draws it from hidden tastes; features observe it).
SEGMENTS = {
    "thrill_seekers": ("action", "adventure", "scifi", "fantasy"),
    "drama_romance": ("drama", "romance"),
    "laughs_family": ("comedy", "family"),
    "kids": ("kids", "animation"),
    "dark_mystery": ("crime", "horror", "mystery", "thriller"),
    "real_world": ("documentary", "reality"),
}
# Parts of the local day: name -> (first hour, last hour), inclusive.
DAYPARTS = {"night": (0, 5), "morning": (6, 10), "midday": (11, 16), "evening": (17, 23)}
VIEW_EVENT_TYPES = ("play", "pause", "stop", "complete")
SUBSCRIPTION_EVENT_TYPES = ("signup", "plan_change", "payment_failure", "cancel")
THUMBS = ("up", "down")


@dataclasses.dataclass(frozen=True)
class Text:
    """What a plausible string is: its characters (a Java regex character class) and
    its length. It applies to every string a field holds, array items included."""

    kind: str
    characters: str
    max_length: int
    min_length: int = 1

    @property
    def pattern(self) -> str:
        # \A and \z, not ^ and $: Java's $ also matches before a final line break.
        return rf"\A{self.characters}{{{self.min_length},{self.max_length}}}\z"

    def describe(self) -> str:
        """The rule in words: kind, length range and character class."""
        return f"{self.kind}: {self.min_length}-{self.max_length} of {self.characters}"


# Ids and codes are plain ASCII; free text is anything printable: no control characters
# (NUL, tabs and line breaks included), lone surrogates or U+FFFD left by broken bytes.
ID = Text("id", "[A-Za-z0-9_.:-]", 64)
CODE = Text("code", "[A-Za-z0-9_-]", 32)
COUNTRY_CODE = Text("country code", "[A-Z]", 2, min_length=2)
FREE_TEXT = Text("free text", r"[^\p{Cc}\p{Cs}\x{FFFD}]", 500)


@dataclasses.dataclass(frozen=True)
class Reference:
    """An upper bound looked up in another source: at most `factor` times the `field`
    of the `source` record whose `key` equals this record's `key` (same name in both).
    When that record is unknown, the field's own `maximum` is the only bound."""

    source: str
    key: str
    field: str
    factor: float

    def describe(self) -> str:
        """The bound in words, e.g. ``<= 120 x titles.duration_minutes of its title_id``."""
        return f"<= {self.factor:g} x {self.source}.{self.field} of its {self.key}"


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    dtype: T.DataType
    required: bool = True
    allowed: tuple[str, ...] = ()  # closed set of values (an enum; for arrays, of items)
    pii: bool = False  # dropped before bronze
    pseudonymize: bool = False  # replaced by a keyed hash in bronze
    # Plausibility, checked by ingestion (reason `implausible_value`):
    minimum: float | dt.date | None = None  # numbers and dates, inclusive
    maximum: float | dt.date | None = None
    above: float | None = None  # numbers, exclusive (a probability that must not be 0)
    text: Text = FREE_TEXT  # every string the field holds (not checked when `allowed`)
    max_items: int | None = None  # arrays
    bounded_by: Reference | None = None  # numbers
    among: str | None = None  # an array field of the same record that must hold the value

    @property
    def holds_strings(self) -> bool:
        return holds_strings(self.dtype)

    def rules(self) -> tuple[str, ...]:
        """The field's plausibility rules in words (for `describe`)."""
        rules = []
        if self.allowed:
            rules.append("one of " + ", ".join(self.allowed))
        elif self.holds_strings:
            rules.append(self.text.describe())
        if self.minimum is not None or self.maximum is not None or self.above is not None:
            low = "" if self.minimum is None else f"{self.minimum} <= "
            low = low if self.above is None else f"{self.above} < "
            high = "" if self.maximum is None else f" <= {self.maximum}"
            rules.append(f"{low}value{high}")
        if self.max_items is not None:
            rules.append(f"at most {self.max_items} items")
        if self.bounded_by is not None:
            rules.append(self.bounded_by.describe())
        if self.among is not None:
            rules.append(f"one of the record's {self.among}")
        return tuple(rules)


def holds_strings(dtype: T.DataType) -> bool:
    """Whether values of `dtype` contain strings (itself, its items or struct fields)."""
    if isinstance(dtype, T.ArrayType):
        return holds_strings(dtype.elementType)
    if isinstance(dtype, T.StructType):
        return any(holds_strings(f.dataType) for f in dtype.fields)
    return isinstance(dtype, T.StringType)


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    description: str
    fields: tuple[Field, ...]
    id_field: str = "event_id"
    ts_field: str = "event_ts"

    def field(self, name: str) -> Field:
        """The field called `name`; raises `StopIteration` when there is none."""
        return next(f for f in self.fields if f.name == name)

    @property
    def landing_schema(self) -> T.StructType:
        return T.StructType([T.StructField(f.name, f.dtype, not f.required) for f in self.fields])

    @property
    def bronze_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.pii)

    @property
    def referenced_sources(self) -> tuple[str, ...]:
        """Other sources this one's plausibility rules look values up in."""
        return tuple(dict.fromkeys(f.bounded_by.source for f in self.fields if f.bounded_by))

    def describe(self) -> str:
        """The landing schema with each field's rules, one field a line."""
        rows = [f"{self.name}: {self.description}"]
        for f in self.fields:
            flags = [
                "required" if f.required else "optional",
                *(["pii"] if f.pii else []),
                *(["pseudonymized"] if f.pseudonymize else []),
            ]
            rows.append(
                f"  {f.name:<19} {f.dtype.simpleString():<27} {', '.join(flags):<23} "
                + "; ".join(f.rules())
            )
        return "\n".join(rows)

    @property
    def scattered_columns(self) -> tuple[str, ...]:
        """Bronze columns whose values seldom repeat within a file: event ids and times,
        session ids, member pseudonyms (see `lake.without_dictionaries`)."""
        return tuple(
            f.name
            for f in self.bronze_fields
            if f.name in (self.id_field, self.ts_field, "session_id") or f.pseudonymize
        )


_STR = T.StringType()
_TS = T.TimestampType()
_INT = T.IntegerType()
_LONG = T.LongType()
_DATE = T.DateType()
_BOOL = T.BooleanType()
_STR_ARRAY = T.ArrayType(T.StringType(), containsNull=False)
_DOUBLE = T.DoubleType()
_ARTWORK = T.ArrayType(
    T.StructType([T.StructField("artwork_id", _STR), T.StructField("style", _STR)]),
    containsNull=False,
)


# Plausible ranges, far wider than the generator's (households of 1-5, titles of 20-200
# minutes, prices of 799-2299 cents) so that no real record trips them.
_SECONDS_IN_A_DAY = 86_400
_FIRST_FILM = dt.date(1870, 1, 1)
_FIRST_SIGNUP = dt.date(1990, 1, 1)
# A view's watch time is within twice its title's length (rewinds, rewatches), its
# position within one and a half (rounding of the length to minutes, credits).
_WATCH_WITHIN_TITLE = Reference("titles", "title_id", "duration_minutes", factor=2 * 60)
_POSITION_WITHIN_TITLE = Reference("titles", "title_id", "duration_minutes", factor=1.5 * 60)


def _id(name: str, **kwargs) -> Field:
    return Field(name, _STR, text=ID, **kwargs)


def _common(*extra: Field) -> tuple[Field, ...]:
    return (_id("event_id"), Field("event_ts", _TS), *extra)


def _member(*extra: Field) -> tuple[Field, ...]:
    return _common(
        _id("account_id", pseudonymize=True),
        _id("profile_id", pseudonymize=True),
        *extra,
    )


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "accounts",
            "Account records (one per account version): plan, home region, contact details.",
            _common(
                _id("account_id", pseudonymize=True),
                Field("country", _STR, text=COUNTRY_CODE),
                Field("region", _STR, allowed=tuple(REGIONS)),
                Field("plan", _STR, allowed=PLANS),
                Field("signup_date", _DATE, minimum=_FIRST_SIGNUP),
                Field("household_size", _INT, minimum=1, maximum=20),
                Field("email", _STR, pii=True),
                Field("full_name", _STR, pii=True),
                Field("phone", _STR, required=False, pii=True),
            ),
        ),
        Source(
            "profiles",
            "Viewer profiles within a household.",
            _member(
                Field("profile_name", _STR, pii=True),
                Field("is_kids", _BOOL),
                Field("language", _STR, text=CODE),
                Field("created_date", _DATE, minimum=_FIRST_SIGNUP),
            ),
        ),
        Source(
            "titles",
            "The catalogue: kind, genres, cast, release, duration, availability, artwork.",
            _common(
                _id("title_id"),
                Field("name", _STR),
                Field("kind", _STR, allowed=KINDS),
                Field("genres", _STR_ARRAY, allowed=GENRES, max_items=len(GENRES)),
                Field("cast", _STR_ARRAY, text=ID, max_items=500),
                Field("release_date", _DATE, minimum=_FIRST_FILM),
                Field("duration_minutes", _INT, minimum=1, maximum=24 * 60),
                Field("episodes", _INT, required=False, minimum=1, maximum=10_000),
                Field(
                    "available_regions",
                    _STR_ARRAY,
                    allowed=tuple(REGIONS),
                    max_items=len(REGIONS),
                ),
                Field("artwork", _ARTWORK, text=ID, max_items=100),
            ),
        ),
        Source(
            "viewing",
            "Playback events: play, pause, stop, complete.",
            _member(
                _id("session_id"),
                _id("title_id"),
                Field("event_type", _STR, allowed=VIEW_EVENT_TYPES),
                Field(
                    "watch_seconds",
                    _INT,
                    minimum=0,
                    maximum=_SECONDS_IN_A_DAY,
                    bounded_by=_WATCH_WITHIN_TITLE,
                ),
                Field(
                    "position_seconds",
                    _INT,
                    minimum=0,
                    maximum=_SECONDS_IN_A_DAY,
                    bounded_by=_POSITION_WITHIN_TITLE,
                ),
                Field("device", _STR, allowed=DEVICES),
                Field("region", _STR, allowed=tuple(REGIONS)),
                Field("local_hour", _INT, minimum=0, maximum=23),
            ),
        ),
        Source(
            "impressions",
            "Titles shown on a page row, the artwork variant shown (with the variants it was "
            "chosen from and the probability it had), and whether it was clicked.",
            _member(
                _id("session_id"),
                _id("title_id"),
                _id("artwork_id", among="artwork_candidates"),
                Field("artwork_candidates", _STR_ARRAY, text=ID, max_items=100),
                Field("artwork_propensity", _DOUBLE, above=0.0, maximum=1.0),
                Field("page_row", _STR, allowed=PAGE_ROWS),
                Field("row_position", _INT, minimum=0, maximum=1_000),
                Field("clicked", _BOOL),
                Field("device", _STR, allowed=DEVICES),
                Field("region", _STR, allowed=tuple(REGIONS)),
            ),
        ),
        Source(
            "ratings",
            "Thumbs up / down.",
            _member(_id("title_id"), Field("thumbs", _STR, allowed=THUMBS)),
        ),
        Source(
            "searches",
            "Search queries typed by a profile.",
            _member(
                Field("query", _STR),
                Field("results_count", _INT, minimum=0, maximum=1_000_000),
                Field("device", _STR, allowed=DEVICES),
            ),
        ),
        Source(
            "subscriptions",
            "Subscription lifecycle: signup, plan change, payment failure, cancel.",
            _common(
                _id("account_id", pseudonymize=True),
                Field("event_type", _STR, allowed=SUBSCRIPTION_EVENT_TYPES),
                Field("plan", _STR, allowed=PLANS),
                Field("previous_plan", _STR, required=False, allowed=PLANS),
                Field("amount_cents", _LONG, required=False, minimum=0, maximum=1_000_000),
            ),
        ),
    )
}
