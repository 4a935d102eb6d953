"""Property: whatever a day's landing folders hold, ingestion accounts for every line and
lands every good one.

Hypothesis draws folders of random shapes for random sources: valid lines built from the
source's declaration, copies and conflicting versions of them, lines broken in known ways,
malformed JSON, binary garbage, lines longer than `ingest.max_line_bytes`, empty lines;
spread over plain and gzip files (some truncated, some of several gzip members), with odd
names, in subfolders, beside hidden files. The real `ingest_date` runs on a fresh Delta
lake per example, and the test checks its report against counts it works out itself.

Runs a few derandomized examples by default (each is a Spark ingest); for a long search:
`HYPOTHESIS_PROFILE=thorough pytest tests/test_ingest_properties.py` (300 examples, or
`HYPOTHESIS_MAX_EXAMPLES`).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import gzip
import json
import os
import tempfile
import zlib
from pathlib import Path

from conftest import make_config
from hypothesis import HealthCheck, Phase, example, given, note, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_store import lake as lk
from feature_store.ingest import ingest_date
from feature_store.sources import (
    ARTWORK_STYLES,
    CODE,
    COUNTRY_CODE,
    ID,
    SOURCES,
    Field,
    Source,
)

DAY = dt.date(2026, 1, 5)
MAX_LINE_BYTES = 1024  # the smallest the config allows: long lines are cheap to write
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile(
    "ingest-ci",
    max_examples=2,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=_SLOW,
)
settings.register_profile(
    "thorough",
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "300")),
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=_SLOW,
    print_blob=True,
)
PROFILE_NAME = os.environ.get("HYPOTHESIS_PROFILE", "ingest-ci")
PROFILE = settings.get_profile(PROFILE_NAME)
# Sources per example (one ingest of the day): the long run covers more per Spark run.
MAX_SOURCES = 3 if PROFILE_NAME == "thorough" else 2

# ------------------------------------------------------------------ lines and files


@dataclasses.dataclass(frozen=True)
class Line:
    """One landing line and what ingestion must make of it."""

    text: bytes
    kind: str  # record (valid: lands, or is a copy / conflicting version), bad, garbage, empty
    reason: str | None = None  # the quarantine reason of a bad line
    event_id: str | None = None
    event_ts: str | None = None


@dataclasses.dataclass(frozen=True)
class LandingFile:
    path: str  # relative to the date folder
    lines: tuple[Line, ...]
    gzip_members: int = 0  # 0: plain text
    keep_bytes: int | None = None  # truncate the written bytes to this many
    final_newline: bool = True

    @property
    def hidden(self) -> bool:
        return any(part.startswith(("_", ".")) for part in Path(self.path).parts)

    def content(self) -> bytes:
        text = b"\n".join(line.text for line in self.lines)
        if self.lines and self.final_newline:
            text += b"\n"
        if self.gzip_members:
            cut = max(1, len(text) // self.gzip_members)
            pieces = [text[i : i + cut] for i in range(0, len(text), cut)] or [b""]
            text = b"".join(gzip.compress(p, mtime=0) for p in pieces)
        return text if self.keep_bytes is None else text[: self.keep_bytes]


ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"
CODE_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"
FREE_TEXT_CHARS = st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="\ufffd")
TITLE_IDS = ("tt1", "tt2", "tt3")  # shared by titles and viewing, so the title bound applies
# File names: brackets and other glob characters, spaces, percent signs, unicode.
NAME_CHARS = st.sampled_from(list("abcXYZ019 -_.[]{}()*?!%#@+=,;'&~$") + ["é", "東", "😀"])


def _text(field: Field) -> st.SearchStrategy[str]:
    if field.text == ID:
        return st.text(ID_CHARS, min_size=1, max_size=12)
    if field.text == CODE:
        return st.text(CODE_CHARS, min_size=1, max_size=8)
    if field.text == COUNTRY_CODE:
        return st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)
    return st.text(FREE_TEXT_CHARS, min_size=1, max_size=12)


def _plausible(field: Field) -> st.SearchStrategy:
    """A value of `field` that meets its declared type and rules."""
    dtype = field.dtype
    if field.name == "title_id":
        return st.sampled_from(TITLE_IDS)
    if field.bounded_by is not None:  # within any title's bound: a title lasts >= 1 minute
        return st.integers(0, int(field.bounded_by.factor))
    if isinstance(dtype, T.ArrayType):
        if field.allowed:
            return st.lists(st.sampled_from(field.allowed), min_size=1, max_size=3, unique=True)
        if isinstance(dtype.elementType, T.StructType):
            item = st.fixed_dictionaries(
                {"artwork_id": _text(field), "style": st.sampled_from(ARTWORK_STYLES)}
            )
            return st.lists(item, max_size=3)
        return st.lists(_text(field), max_size=3)
    if field.allowed:
        return st.sampled_from(field.allowed)
    if isinstance(dtype, T.StringType):
        return _text(field)
    if isinstance(dtype, T.BooleanType):
        return st.booleans()
    if isinstance(dtype, T.DoubleType):  # a probability: above 0, at most 1
        return st.floats(field.above, field.maximum, exclude_min=True)
    if isinstance(dtype, T.DateType):
        low = field.minimum or dt.date(1990, 1, 1)
        return st.dates(low, dt.date(2030, 12, 31)).map(dt.date.isoformat)
    if isinstance(dtype, T.TimestampType):
        start = dt.datetime.combine(DAY - dt.timedelta(days=3), dt.time())
        seconds = st.integers(0, 4 * 86_400 - 2)
        return seconds.map(lambda s: (start + dt.timedelta(seconds=s)).strftime(_TS_FORMAT))
    low = field.minimum if field.minimum is not None else -1_000
    high = field.maximum if field.maximum is not None else 1_000
    return st.integers(low, high)


_TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _dumps(record: dict, ascii_only: bool) -> bytes:
    return json.dumps(record, ensure_ascii=ascii_only).encode()


@st.composite
def records(draw, source: Source, event_id: str) -> dict:
    record = {}
    for field in source.fields:
        if not field.required and draw(st.booleans()):
            continue  # optional fields are left out, or written as null
        optional_null = not field.required and draw(st.booleans())
        record[field.name] = None if optional_null else draw(_plausible(field))
    for field in source.fields:
        if field.among:  # one of the record's own list (which then holds at least one)
            items = record[field.among] = record[field.among] or [record[field.name]]
            record[field.name] = draw(st.sampled_from(items))
    record[source.id_field] = event_id
    return record


@st.composite
def bad_lines(draw, source: Source, event_id: str, ascii_only: bool) -> Line:
    """A record broken in one way whose reason is known."""
    record = draw(records(source, event_id))
    kinds = ["missing_field", "wrong_type", "duplicate_key", "implausible_value", "malformed"]
    if any(f.allowed for f in source.fields):
        kinds.append("unknown_value")
    kind = draw(st.sampled_from(kinds))
    if kind == "missing_field":
        field = draw(st.sampled_from([f for f in source.fields if f.required]))
        del record[field.name]
    elif kind == "wrong_type":
        field = draw(st.sampled_from(source.fields))
        strings = isinstance(field.dtype, T.StringType)
        record[field.name] = {"unexpected": [1]} if strings else "n/a"
    elif kind == "unknown_value":
        field = draw(st.sampled_from([f for f in source.fields if f.allowed]))
        scalar = not isinstance(field.dtype, T.ArrayType)
        record[field.name] = "not-allowed" if scalar else ["not-allowed"]
    elif kind == "implausible_value":
        field, value = draw(_implausible(source))
        record[field.name] = value
    text = _dumps(record, ascii_only)
    if kind == "duplicate_key":
        repeated = draw(st.sampled_from(list(record)))
        text = text[:-1] + b', "' + repeated.encode() + b'": ' + _dumps(record[repeated], True)
        text += b"}"
    if kind == "malformed":
        text = text[: len(text) // 2]
        return Line(text, "bad", "malformed_json")
    return Line(text, "bad", kind)


@st.composite
def _implausible(draw, source: Source) -> tuple[Field, object]:
    candidates = [
        f
        for f in source.fields
        if (f.maximum is not None and isinstance(f.maximum, int))
        or (isinstance(f.dtype, T.StringType) and not f.allowed)
    ]
    field = draw(st.sampled_from(candidates))
    if isinstance(field.dtype, T.StringType):
        if field.text == ID:
            return field, draw(st.sampled_from(["a b", "x" * 65, "id\x00", '{"$oid"}']))
        return field, draw(st.sampled_from(["a\x00b", "tab\there", "line\nbreak", "x" * 501]))
    return field, draw(st.sampled_from([field.maximum + 1, (field.minimum or 0) - 1]))


def _garbage() -> st.SearchStrategy[bytes]:
    body = st.binary(max_size=120).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))
    return body.map(lambda b: b"\xff" + b)


@st.composite
def folders(draw, source: Source) -> list[LandingFile]:
    """A source's landing folder for DAY: its files (hidden ones included)."""
    ascii_only = draw(st.booleans())
    prefix = draw(st.text(ID_CHARS, min_size=1, max_size=4))
    lines: list[Line] = []
    originals = [draw(records(source, f"{prefix}-ok{i}")) for i in range(draw(st.integers(0, 6)))]
    lines += [_record_line(record, source, ascii_only) for record in originals]
    if originals:
        copied = draw(st.lists(st.sampled_from(originals), max_size=3))
        lines += [_record_line(record, source, ascii_only) for record in copied]
        for record in draw(st.lists(st.sampled_from(originals), max_size=2)):
            ts = dt.datetime.strptime(record[source.ts_field], _TS_FORMAT)
            later = (ts + dt.timedelta(seconds=1)).strftime(_TS_FORMAT)
            version = {**record, source.ts_field: later}  # same id, other content
            lines.append(_record_line(version, source, ascii_only))
    for i in range(draw(st.integers(0, 4))):
        lines.append(draw(bad_lines(source, f"{prefix}-bad{i}", ascii_only)))
    for i in range(draw(st.integers(0, 2))):
        padding = "p" * draw(st.integers(MAX_LINE_BYTES + 1, 3 * MAX_LINE_BYTES))
        record = {**draw(records(source, f"{prefix}-big{i}")), "padding": padding}
        lines.append(_record_line(record, source, ascii_only))
    lines += [Line(b, "garbage") for b in draw(st.lists(_garbage(), max_size=2))]
    lines += [Line(b, "empty") for b in draw(st.lists(st.sampled_from([b"", b"   "]), max_size=2))]
    # Lines just under or at the limit are left out: where exactly a line counts as too
    # long (with or without its end) is the reader's convention, not this property's.
    lines = draw(st.permutations([line for line in lines if not _near_the_limit(line)]))

    n_files = draw(st.integers(1, 4))
    owners = [draw(st.integers(0, n_files - 1)) for _ in lines]
    names = draw(st.lists(st.text(NAME_CHARS, min_size=1, max_size=10), min_size=n_files,
                          max_size=n_files))  # fmt: skip
    files = []
    for index, name in enumerate(names):
        own = tuple(line for line, owner in zip(lines, owners, strict=True) if owner == index)
        files.append(draw(_file(f"f{index} {name}", own)))
    hidden = draw(st.lists(st.sampled_from(["_x", ".x", "_tmp/a.txt", ".cache/b.gz"]),
                           max_size=2, unique=True))  # fmt: skip
    for name in hidden:
        files.append(LandingFile(name, tuple(lines[:2]), gzip_members=int(name.endswith(".gz"))))
    if draw(st.booleans()):
        files.append(LandingFile("_SUCCESS", ()))  # Hadoop's marker: not a landing file
    return files


def _near_the_limit(line: Line) -> bool:
    return MAX_LINE_BYTES - 3 <= len(line.text) <= MAX_LINE_BYTES + 1


def _record_line(record: dict, source: Source, ascii_only: bool) -> Line:
    return Line(
        _dumps(record, ascii_only),
        "record",
        event_id=record[source.id_field],
        event_ts=record[source.ts_field],
    )


@st.composite
def _file(draw, name: str, lines: tuple[Line, ...]) -> LandingFile:
    folder = draw(st.sampled_from(["", "", "", "sub dir/", "dossier [2]/"]))
    members = draw(st.sampled_from([0, 0, 1, 1, 2]))
    path = folder + name + (".gz" if members else draw(st.sampled_from([".txt", ".json", ""])))
    file = LandingFile(path, lines, members, final_newline=draw(st.booleans()))
    if members and draw(st.integers(0, 3)) == 0:  # a truncated archive
        size = len(file.content())
        file = dataclasses.replace(file, keep_bytes=draw(st.integers(1, max(1, size - 1))))
    return file


# ------------------------------------------------------------------ what ingestion must do


@dataclasses.dataclass
class Expected:
    lines: int = 0
    bronze_ids: set = dataclasses.field(default_factory=set)
    duplicates: int = 0
    reasons: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    @property
    def quarantined(self) -> int:
        return sum(n for r, n in self.reasons.items() if r != "duplicate_in_file")


def expected_outcome(files: list[LandingFile]) -> Expected:
    """Worked out from the files as written, independently of the ingestion code."""
    expected = Expected()
    read: list[Line] = []
    for file in files:
        if file.path == "_SUCCESS":
            continue
        if file.hidden:
            expected.reasons["hidden_file"] += 1
            continue
        whole, complete = _readable(file)
        if not whole:
            expected.reasons["corrupt_archive"] += 1
        for line in file.lines[:complete]:
            if len(line.text) + 1 >= MAX_LINE_BYTES:
                expected.reasons["oversized_line"] += 1
            else:
                read.append(line)
    by_id: dict[str, list[Line]] = collections.defaultdict(list)
    for line in read:
        if line.kind == "record":
            by_id[line.event_id].append(line)
        else:
            reason = {"bad": line.reason, "garbage": "malformed_json", "empty": "empty_line"}
            expected.reasons[reason[line.kind]] += 1
    for event_id, copies in by_id.items():
        first, *rest = sorted(copies, key=lambda c: (c.event_ts, c.text))
        expected.bronze_ids.add(event_id)
        for copy in rest:
            same = copy.text == first.text
            expected.reasons["duplicate_in_file" if same else "conflicting_duplicate"] += 1
            expected.duplicates += same
    expected.lines = (
        len(read)
        + expected.reasons["oversized_line"]
        + expected.reasons["hidden_file"]
        + expected.reasons["corrupt_archive"]
    )
    return expected


def _readable(file: LandingFile) -> tuple[bool, int]:
    """(whether the file reads whole, how many of its lines can be read)."""
    content = file.content()
    decoded, whole = _gunzip_prefix(content) if file.gzip_members else (content, True)
    ended = decoded.count(b"\n")  # an empty last line without its newline is no line
    if whole and decoded and not decoded.endswith(b"\n"):
        ended += 1  # a last line without its newline, in an intact archive
    return whole, min(ended, len(file.lines))


def _gunzip_prefix(content: bytes) -> tuple[bytes, bool]:
    """The bytes a gzip file decodes to before any damage, and whether it has none."""
    out, rest = b"", content
    while rest:
        decoder = zlib.decompressobj(31)
        try:
            out += decoder.decompress(rest)
        except zlib.error:
            return out, False
        if not decoder.eof:
            return out, False
        rest = decoder.unused_data
    return out, True


# ------------------------------------------------------------------ the issue's folder


def _view(event_id: str, **changes) -> Line:
    record = {
        "event_id": event_id,
        "event_ts": "2026-01-05T20:15:00Z",
        "account_id": "acc000000001",
        "profile_id": "acc000000001-p0",
        "session_id": "s1",
        "title_id": "tt1",
        "event_type": "play",
        "watch_seconds": 30,
        "position_seconds": 30,
        "device": "tv",
        "region": "gb",
        "local_hour": 20,
        **changes,
    }
    return _record_line(record, SOURCES["viewing"], ascii_only=True)


def _issue_folder() -> list[LandingFile]:
    """The cases issue 21 reported, in one folder: a gzip file beside plain ones, a
    truncated gzip file, brackets in a name, two long lines in one file, hidden files,
    copies and conflicting versions, implausible values and a key written twice."""
    ok = [_view(f"e{i}") for i in range(5)]
    long_line = _view("big", session_id="s" * (2 * MAX_LINE_BYTES)).text
    twice = ok[0].text[:-1] + b', "local_hour": 3}'
    # varied lines, so that half the archive decodes to some of them
    varied = [
        _view(f"cut{i}", session_id=f"s{i * 7919 % 10007}", watch_seconds=i) for i in range(40)
    ]
    truncated = LandingFile("cut.gz", tuple(varied), gzip_members=1)
    return [
        LandingFile(
            "part [1].txt",
            (
                ok[0],
                Line(long_line, "record", event_id="big1", event_ts="2026-01-05T20:15:00Z"),
                ok[1],
                Line(long_line + b" ", "record", event_id="big2", event_ts="2026-01-05T20:15:00Z"),
                ok[0],
                Line(b"\xff\x00garbage", "garbage"),
                Line(b"", "empty"),
            ),
        ),
        LandingFile(
            "part 2.txt.gz",
            (
                ok[2],
                ok[3],
                _view("e3", event_ts="2026-01-05T20:15:01Z"),
                dataclasses.replace(
                    _view("hour", local_hour=99), kind="bad", reason="implausible_value"
                ),
                dataclasses.replace(
                    _view("neg", watch_seconds=-7200), kind="bad", reason="implausible_value"
                ),
                dataclasses.replace(
                    _view("obj", title_id={"id": 1}), kind="bad", reason="wrong_type"
                ),
                Line(twice, "bad", "duplicate_key"),
            ),
            gzip_members=1,
        ),
        dataclasses.replace(truncated, keep_bytes=len(truncated.content()) // 2),
        LandingFile("sub dir/ünï {x}.json", (ok[4],), final_newline=False),
        LandingFile("_skipped.txt", (ok[4],)),
        LandingFile(".hidden", (ok[4],)),
    ]


# ------------------------------------------------------------------ the property


def _write(folder: Path, files: list[LandingFile]) -> None:
    for file in files:
        path = folder / file.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file.content())


def _describe(files: list[LandingFile]) -> str:
    return "\n".join(
        f"  {f.path!r}: {len(f.lines)} lines, gzip members {f.gzip_members}, "
        f"kept bytes {f.keep_bytes}, final newline {f.final_newline}: "
        + ", ".join(line.reason or line.kind for line in f.lines)
        for f in files
    )


@settings(PROFILE)
@example((("viewing", _issue_folder()),))
@given(
    st.lists(
        st.sampled_from(sorted(SOURCES)), min_size=1, max_size=MAX_SOURCES, unique=True
    ).flatmap(lambda names: st.tuples(*[st.tuples(st.just(n), folders(SOURCES[n])) for n in names]))
)
def test_ingestion_accounts_for_every_landing_line(spark, drawn):
    with tempfile.TemporaryDirectory(prefix="ingest-property-") as state:
        config = make_config(
            Path(state),
            f"ingest.max_line_bytes={MAX_LINE_BYTES}",
            "ingest.max_quarantine_share=1.0",  # all dirt is allowed: the count is checked
        )
        lake = lk.Lake(config.lake)
        for name, files in drawn:
            note(f"{name}:\n{_describe(files)}")
            _write(Path(lake.landing(name, DAY)), files)

        report = ingest_date(spark, config, DAY, sources=[name for name, _ in drawn])

        by_source = {s.source: s for s in report.sources}
        assert report.committed
        assert sorted(by_source) == sorted(name for name, _ in drawn)
        quarantine = lk.read_table(spark, lake.quarantine).filter(F.col("ingest_date") == DAY)
        for name, files in drawn:
            got, want = by_source[name], expected_outcome(files)
            suppressed = getattr(got, "suppressed", 0)
            assert got.lines == got.bronze + got.quarantined + got.duplicates + suppressed, name
            assert suppressed == 0, name
            assert (got.lines, got.bronze, got.quarantined, got.duplicates) == (
                want.lines,
                len(want.bronze_ids),
                want.quarantined,
                want.duplicates,
            ), name
            assert got.reasons == dict(+want.reasons), name
            landed = set()
            if lk.table_exists(spark, lake.bronze(name)):
                bronze = lk.read_table(spark, lake.bronze(name)).select("event_id")
                landed = {row["event_id"] for row in bronze.collect()}
            assert landed == want.bronze_ids, name
            kept = quarantine.filter(F.col("source") == name).groupBy("reason").count()
            assert {r["reason"]: r["count"] for r in kept.collect()} == {
                r: n for r, n in want.reasons.items() if n and r != "duplicate_in_file"
            }, name
