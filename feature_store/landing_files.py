"""One day's landing files of a source, read as lines with every byte accounted for.

Plain files go through Spark's text reader, which skips lines longer than
`ingest.max_line_bytes` (each reported with its size). Gzip, bzip2 and zlib archives are
decoded in Python workers: a damaged one yields the lines before the damage plus one record
for the rest. Hidden files (`_x`, `.x`) are reported, not read. Paths reach Spark with their
glob characters escaped, so any file name works. Why: docs/ingestion.md.
"""

from __future__ import annotations

import bz2
import dataclasses
import itertools
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_store import lake as lk

if TYPE_CHECKING:
    import pyarrow as pa

OVERSIZED_LINE = "oversized_line"
CORRUPT_ARCHIVE = "corrupt_archive"
HIDDEN_FILE = "hidden_file"
BOOKKEEPING_FILE = "bookkeeping_file"  # Hadoop's .crc and _SUCCESS: bytes reported only

_DECODERS: dict[str, Callable[[], object]] = {
    ".gz": lambda: zlib.decompressobj(31),  # one gzip member; members are decoded in turn
    ".bz2": bz2.BZ2Decompressor,
    ".deflate": lambda: zlib.decompressobj(15),  # Hadoop's DefaultCodec: a zlib stream
}
# Hadoop's own framings, which only its codecs read: Spark reads these whole.
JVM_ONLY_SUFFIXES = (".lz4", ".snappy", ".zst")
_PIECE = 1 << 16  # compressed bytes fed to a decoder at a time: bounds a zip bomb's output
_LINE_END = re.compile(rb"\r\n|\r|\n")  # Hadoop's line ends
_BOM = b"\xef\xbb\xbf"  # Hadoop's reader drops it from a file's first line
_BATCH_ROWS = 8192

SCAN_SCHEMA = T.StructType(
    [
        T.StructField("source_file", T.StringType()),
        T.StructField("value", T.BinaryType()),  # a line read, or null for a stretch not read
        T.StructField("reason", T.StringType()),  # why a stretch was not read
        T.StructField("unread_bytes", T.LongType()),
        T.StructField("detail", T.StringType()),
    ]
)


@dataclasses.dataclass(frozen=True)
class Unread:
    """A stretch of landing bytes that did not become lines: one quarantine record."""

    source_file: str
    reason: str
    unread_bytes: int
    detail: str


@dataclasses.dataclass(frozen=True)
class Listing:
    """Every file under a source's landing folder for one date, from one listing."""

    files: tuple[tuple[str, int], ...]  # read as lines: (path as listed, bytes)
    hidden: tuple[tuple[str, int], ...]  # not read, reported as `hidden_file`
    bookkeeping: tuple[tuple[str, int], ...]  # Hadoop's `.x.crc` and `_SUCCESS`: not read

    @property
    def landing_bytes(self) -> int:
        return sum(size for _, size in (*self.files, *self.hidden, *self.bookkeeping))

    def unread(self, spark: SparkSession) -> list[Unread]:
        """A record per hidden file, named as Spark names the files it reads."""
        named = spark_paths(spark, [path for path, _ in self.hidden])
        return [
            Unread(
                named[path],
                HIDDEN_FILE,
                size,
                f"{size} bytes not read: the file name (or a folder's) starts with '_' or '.'",
            )
            for path, size in self.hidden
        ]


def list_landing(spark: SparkSession, folder: str) -> Listing:
    """Every file under `folder` with its size, split into read, hidden and bookkeeping."""
    everything = lk.list_files(spark, folder, include_hidden=True)
    names = {path for path, _ in everything}
    files, hidden, bookkeeping = [], [], []
    for path, size in everything:
        if not lk.is_hidden(path, folder):
            files.append((path, size))
        elif _is_bookkeeping(path, size, names):
            bookkeeping.append((path, size))
        else:
            hidden.append((path, size))
    return Listing(tuple(files), tuple(hidden), tuple(bookkeeping))


def _is_bookkeeping(path: str, size: int, names: set[str]) -> bool:
    folder, _, name = path.rpartition("/")
    if name == "_SUCCESS":
        return size == 0
    checked = re.fullmatch(r"\.(.+)\.crc", name)
    return bool(checked) and f"{folder}/{checked.group(1)}" in names


def glob_escaped(path: str) -> str:
    """A path Spark's readers take literally: they expand `*?[]{}` as a glob otherwise."""
    return re.sub(r"([\\*?\[\]{}])", r"\\\1", path)


def spark_paths(spark: SparkSession, paths: Iterable[str]) -> dict[str, str]:
    """Listed path -> the form Spark reports in `_metadata.file_path` (a URI, so
    `a[1].txt` appears as `a%5B1%5D.txt`)."""
    jvm = spark.sparkContext._jvm  # noqa: SLF001
    return {p: jvm.org.apache.hadoop.fs.Path(p).toUri().toString() for p in paths}


@dataclasses.dataclass
class LandingLines:
    """The lines of one source's landing files for a date: `lines` (value, source_file)."""

    lines: DataFrame
    _archives: DataFrame | None  # persisted scan of decoded archives: lines and stretches
    _plain: dict[str, tuple[str, int]]  # Spark path -> (listed path, bytes) of plain files
    _max_bytes: int

    def unread(self, spark: SparkSession, line_bytes: dict[str, int]) -> list[Unread]:
        """Stretches not read: archives' corrupt tails and long lines, and the long lines
        of plain files whose lines (`line_bytes`, per Spark path) fall short of their size.
        Call after the lines were read; a rescan happens only for such short files."""
        found: list[Unread] = []
        if self._archives is not None:
            found += _collect_unread(self._archives)
        # A skipped line is at least max_bytes long; a missing final newline explains one
        # byte, CRLF endings one per line (those files are rescanned and found clean).
        short = [
            listed
            for spark_path, (listed, size) in self._plain.items()
            if size - line_bytes.get(spark_path, 0) >= self._max_bytes - 1
        ]
        if short:
            found += _collect_unread(_scan(spark, short, self._max_bytes, keep_lines=False))
        return found

    def unpersist(self) -> None:
        """Release the persisted archive scan (call when the lines are no longer needed)."""
        if self._archives is not None:
            self._archives.unpersist()


def read_lines(
    spark: SparkSession, files: Iterable[tuple[str, int]], max_bytes: int
) -> LandingLines:
    """The lines of `files` (path, bytes): plain and JVM-framed files read by Spark,
    archives decoded in Python; lines of `max_bytes` or more are left out (see `unread`)."""
    files = list(files)
    decoded = [p for p, _ in files if p.endswith(tuple(_DECODERS))]
    jvm_only = [p for p, _ in files if p.endswith(JVM_ONLY_SUFFIXES)]
    plain = [(p, n) for p, n in files if not p.endswith((*_DECODERS, *JVM_ONLY_SUFFIXES))]
    parts = []
    if plain:
        text = spark.read.option("mapreduce.input.linerecordreader.line.maxlength", max_bytes)
        # A line longer than max_bytes that spans two splits comes out cut to max_bytes:
        # drop it here, so the file counts short and its rescan reports the whole line.
        parts.append(
            _with_source_file(text.text([glob_escaped(p) for p, _ in plain])).filter(
                F.octet_length("value") < max_bytes
            )
        )
    if jvm_only:
        parts.append(_with_source_file(spark.read.text([glob_escaped(p) for p in jvm_only])))
    archives = None
    if decoded:
        archives = _scan(spark, decoded, max_bytes, keep_lines=True).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        parts.append(
            archives.filter(F.col("value").isNotNull()).select(
                F.col("value").cast("string").alias("value"), "source_file"
            )
        )
    if parts:
        lines = parts[0]
        for part in parts[1:]:
            lines = lines.unionByName(part)
    else:
        lines = spark.createDataFrame([], "value string, source_file string")
    by_spark_path = spark_paths(spark, [p for p, _ in plain])
    plain_files = {by_spark_path[p]: (p, n) for p, n in plain}
    return LandingLines(lines, archives, plain_files, max_bytes)


def _with_source_file(df: DataFrame) -> DataFrame:
    # Taken per reader, before any union: `_metadata` exists only on a file scan.
    return df.select("value", F.col("_metadata.file_path").alias("source_file"))


def _scan(spark: SparkSession, paths: list[str], max_bytes: int, *, keep_lines: bool) -> DataFrame:
    contents = (
        spark.read.format("binaryFile")
        .load([glob_escaped(p) for p in paths])
        .select(F.col("_metadata.file_path").alias("path"), "content")
    )

    def scan(batches):
        return scan_batches(batches, max_bytes=max_bytes, keep_lines=keep_lines)

    return contents.mapInArrow(scan, SCAN_SCHEMA)


def _collect_unread(scanned: DataFrame) -> list[Unread]:
    rows = scanned.filter(F.col("reason").isNotNull()).drop("value").collect()
    return [Unread(r["source_file"], r["reason"], r["unread_bytes"], r["detail"]) for r in rows]


# --------------------------------------------------------------------------- Python workers


def scan_batches(
    batches: Iterable[pa.RecordBatch], *, max_bytes: int, keep_lines: bool
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: (path, content) batches in, SCAN_SCHEMA batches out."""
    import pyarrow as pa

    schema = pa.schema(
        [
            ("source_file", pa.string()),
            ("value", pa.binary()),
            ("reason", pa.string()),
            ("unread_bytes", pa.int64()),
            ("detail", pa.string()),
        ]
    )
    columns: tuple[list, ...] = ([], [], [], [], [])
    for batch in batches:
        for path, content in zip(
            batch.column("path").to_pylist(), batch.column("content").to_pylist(), strict=True
        ):
            for line, stretch in scan_file(path, content, max_bytes):
                if stretch is None and not keep_lines:
                    continue
                row = (path, line, None, None, None) if stretch is None else (path, None, *stretch)
                for column, value in zip(columns, row, strict=True):
                    column.append(value)
                if len(columns[0]) >= _BATCH_ROWS:
                    yield pa.RecordBatch.from_arrays(list(columns), schema=schema)
                    columns = ([], [], [], [], [])
    if columns[0]:
        yield pa.RecordBatch.from_arrays(list(columns), schema=schema)


def scan_file(
    path: str, content: bytes, max_bytes: int
) -> Iterator[tuple[bytes | None, tuple[str, int, str] | None]]:
    """Each line of a landing file as (line, None), and each stretch not read as
    (None, (reason, bytes, detail)): lines of `max_bytes` or more (with their end, as
    Hadoop's reader counts them) and the damaged rest of an archive."""
    suffix = next((s for s in _DECODERS if path.endswith(s)), None)
    damage: list[tuple[int, str]] = []  # (compressed offset, error) when the archive is bad
    chunks = [content] if suffix is None else _decoded(content, _DECODERS[suffix], damage)
    lines, tail = 0, 0
    for line, size, ended in _split_lines(chunks, max_bytes):
        if damage and not ended:  # the unfinished line where the archive broke off
            tail = size
        elif line is None:
            yield None, (OVERSIZED_LINE, size, _oversized_detail(size, max_bytes))
        else:
            lines += 1
            yield line, None
    if damage:
        yield None, _corrupt(content, damage[0], lines, tail)


def _oversized_detail(size: int, max_bytes: int) -> str:
    return f"{size} bytes in one line, longer than ingest.max_line_bytes ({max_bytes}): not read"


def _corrupt(content: bytes, damage: tuple[int, str], lines: int, tail: int) -> tuple:
    offset, error = damage
    rest = len(content) - offset
    return (
        CORRUPT_ARCHIVE,
        rest + tail,
        f"{rest + tail} bytes not read: the {len(content)}-byte archive is damaged at byte "
        f"{offset} ({error}); its {lines} lines before that were read, the {rest} archive "
        f"bytes from there and {tail} decoded bytes of an unfinished line were not",
    )


def _decoded(content: bytes, make: Callable[[], object], damage: list) -> Iterator[bytes]:
    """Decoded bytes of an archive of one or more concatenated streams; on damage, the
    bytes decoded before it, and (offset, error) appended to `damage`."""
    if not content:
        return
    view, offset, decoder = memoryview(content), 0, make()
    while offset < len(content):
        piece = bytes(view[offset : offset + _PIECE])
        try:
            out = decoder.decompress(piece)
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            damage.append((offset, str(exc) or type(exc).__name__))
            return
        if out:
            yield out
        if decoder.eof:  # a stream ended: the next one starts right after it
            offset += len(piece) - len(decoder.unused_data)
            if offset < len(content):
                decoder = make()
        else:
            offset += len(piece)
    if not decoder.eof:
        damage.append((len(content), "truncated: the archive ends inside a stream"))


def _without_bom(chunks: Iterable[bytes]) -> tuple[Iterator[bytes], int]:
    """The chunks without a leading byte-order mark, and the mark's size (0 or 3): the
    reader drops it but counts its bytes in the first line. Reads only as far as needed."""
    rest, head = iter(chunks), b""
    for chunk in rest:
        head += chunk
        if len(head) >= len(_BOM):
            break
    if head.startswith(_BOM):
        return itertools.chain([head[len(_BOM) :]], rest), len(_BOM)
    return itertools.chain([head], rest), 0


def _split_lines(
    chunks: Iterable[bytes], max_bytes: int
) -> Iterator[tuple[bytes | None, int, bool]]:
    """Lines as Hadoop's reader cuts them (at CR, LF or CRLF; a first-line BOM dropped),
    as (line, size with its end, ended). A line of `max_bytes` or more comes as
    (None, size, ...): its bytes are counted but never held. The last line may lack an
    end (ended False)."""
    chunks, dropped = _without_bom(chunks)  # dropped: bytes of the current line not kept
    carry = b""
    for chunk in chunks:
        buf = carry + chunk
        # a CR at the end may be the first half of a CRLF: leave it for the next chunk
        end = len(buf) - 1 if buf.endswith(b"\r") else len(buf)
        start = 0
        for match in _LINE_END.finditer(buf, 0, end):
            size = dropped + match.end() - start
            yield (None if size >= max_bytes else buf[start : match.start()]), size, True
            start, dropped = match.end(), 0
        carry = buf[start:]
        if dropped + len(carry) >= max_bytes:  # too long already: count it, don't keep it
            keep = 1 if carry.endswith(b"\r") else 0
            dropped += len(carry) - keep
            carry = carry[len(carry) - keep :]
    size = dropped + len(carry)
    if carry.endswith(b"\r"):  # a final lone CR ends the last line
        yield (None if size >= max_bytes else carry[:-1]), size, True
    elif size:
        yield (None if size >= max_bytes else carry), size, False
