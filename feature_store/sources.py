"""The landing sources, declared as data: one schema per source, shared by the
generator (which writes them) and bronze ingestion (which enforces them).

Every record carries `event_id` (the deduplication key) and `event_ts` (UTC,
ISO-8601). Fields marked `pii` never reach bronze; fields marked `pseudonymize` are
replaced by a keyed hash there.
"""

from __future__ import annotations

import dataclasses

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
class Field:
    name: str
    dtype: T.DataType
    required: bool = True
    allowed: tuple[str, ...] = ()  # closed set of values (an enum); empty means any
    pii: bool = False  # dropped before bronze
    pseudonymize: bool = False  # replaced by a keyed hash in bronze


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    description: str
    fields: tuple[Field, ...]
    id_field: str = "event_id"
    ts_field: str = "event_ts"

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    @property
    def landing_schema(self) -> T.StructType:
        return T.StructType([T.StructField(f.name, f.dtype, not f.required) for f in self.fields])

    @property
    def bronze_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.pii)

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
_ARTWORK = T.ArrayType(
    T.StructType([T.StructField("artwork_id", _STR), T.StructField("style", _STR)]),
    containsNull=False,
)


def _common(*extra: Field) -> tuple[Field, ...]:
    return (Field("event_id", _STR), Field("event_ts", _TS), *extra)


def _member(*extra: Field) -> tuple[Field, ...]:
    return _common(
        Field("account_id", _STR, pseudonymize=True),
        Field("profile_id", _STR, pseudonymize=True),
        *extra,
    )


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "accounts",
            "Account records (one per account version): plan, home region, contact details.",
            _common(
                Field("account_id", _STR, pseudonymize=True),
                Field("country", _STR),
                Field("region", _STR, allowed=tuple(REGIONS)),
                Field("plan", _STR, allowed=PLANS),
                Field("signup_date", _DATE),
                Field("household_size", _INT),
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
                Field("language", _STR),
                Field("created_date", _DATE),
            ),
        ),
        Source(
            "titles",
            "The catalogue: kind, genres, cast, release, duration, availability, artwork.",
            _common(
                Field("title_id", _STR),
                Field("name", _STR),
                Field("kind", _STR, allowed=KINDS),
                Field("genres", _STR_ARRAY),
                Field("cast", _STR_ARRAY),
                Field("release_date", _DATE),
                Field("duration_minutes", _INT),
                Field("episodes", _INT, required=False),
                Field("available_regions", _STR_ARRAY),
                Field("artwork", _ARTWORK),
            ),
        ),
        Source(
            "viewing",
            "Playback events: play, pause, stop, complete.",
            _member(
                Field("session_id", _STR),
                Field("title_id", _STR),
                Field("event_type", _STR, allowed=VIEW_EVENT_TYPES),
                Field("watch_seconds", _INT),
                Field("position_seconds", _INT),
                Field("device", _STR, allowed=DEVICES),
                Field("region", _STR, allowed=tuple(REGIONS)),
                Field("local_hour", _INT),
            ),
        ),
        Source(
            "impressions",
            "Titles shown on a page row, the artwork variant shown, and whether it was clicked.",
            _member(
                Field("session_id", _STR),
                Field("title_id", _STR),
                Field("artwork_id", _STR),
                Field("page_row", _STR, allowed=PAGE_ROWS),
                Field("row_position", _INT),
                Field("clicked", _BOOL),
                Field("device", _STR, allowed=DEVICES),
                Field("region", _STR, allowed=tuple(REGIONS)),
            ),
        ),
        Source(
            "ratings",
            "Thumbs up / down.",
            _member(Field("title_id", _STR), Field("thumbs", _STR, allowed=THUMBS)),
        ),
        Source(
            "searches",
            "Search queries typed by a profile.",
            _member(
                Field("query", _STR),
                Field("results_count", _INT),
                Field("device", _STR, allowed=DEVICES),
            ),
        ),
        Source(
            "subscriptions",
            "Subscription lifecycle: signup, plan change, payment failure, cancel.",
            _common(
                Field("account_id", _STR, pseudonymize=True),
                Field("event_type", _STR, allowed=SUBSCRIPTION_EVENT_TYPES),
                Field("plan", _STR, allowed=PLANS),
                Field("previous_plan", _STR, required=False, allowed=PLANS),
                Field("amount_cents", _LONG, required=False),
            ),
        ),
    )
}
