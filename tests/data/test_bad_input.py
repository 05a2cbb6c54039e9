"""Hostile input to the data layer (issue 12): huge values, non-regular files, folders whose
files disagree, corrupted Parquet pages, edited manifests."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from model.cli import build_parser, main
from model.cli.train import params_from_args
from model.data import encode_target, load_manifest, load_split, prepare, read_table
from model.data.demo import write_demo
from model.data.messages import quote, quote_list
from model.drift import read_frame
from model.errors import DataValidationError, RetrainError
from model.gate.inputs import read_test_data
from model.settings import Settings, get_settings


def frame(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "color": rng.choice(["red", "green", "blue"], rows),
            "target": rng.integers(0, 2, rows),
        }
    )


def write_parquet(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


# ---------------------------------------------------------------- huge values


def test_quote_keeps_messages_short() -> None:
    huge = "é" * 5_000_000
    text = quote(huge)
    assert len(text) < 120 and "(5,000,000 characters)" in text and text.startswith("'éé")
    assert quote("red") == "'red'" and quote(3) == "3"
    assert len(quote("\x00" * 1000)) < 120  # escapes do not multiply the length
    assert len(quote(list(range(100_000)))) <= 80
    assert quote_list(["a", "b"]) == "['a', 'b']"
    many = quote_list([f"column_{i}" for i in range(1000)])
    assert len(many) < 200 and many.endswith("more]")


def test_a_huge_value_gives_a_short_message(tmp_path: Path) -> None:
    df = frame()
    df["x"] = df["x"].astype(object)
    df.loc[150:, "x"] = "y" * 1_000_000  # mixed types: mostly numbers, some text
    path = tmp_path / "huge.csv"
    df.to_csv(path, index=False)
    with pytest.raises(DataValidationError) as info:
        prepare(path, tmp_path / "out")
    message = str(info.value)
    assert len(message) < 300 + len(str(path))
    assert "'x' has mixed types" in message and "(1,000,000 characters) at row 150" in message


def test_a_huge_target_label_gives_a_short_message(tmp_path: Path) -> None:
    df = frame()
    df["target"] = ["a" * 900 + str(i % 3) for i in range(len(df))]  # within the level limit
    with pytest.raises(DataValidationError, match="is not binary") as info:
        prepare(df, tmp_path / "out")
    assert len(str(info.value)) < 400


def test_categorical_level_longer_than_the_limit_is_an_error(tmp_path: Path) -> None:
    df = frame()
    df.loc[7, "color"] = "r" * 50_000
    with pytest.raises(DataValidationError) as info:
        prepare(df, tmp_path / "out")
    message = str(info.value)
    assert "column 'color'" in message and "row 7" in message and "50,000 characters" in message
    assert "1,000" in message and len(message) < 300
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    df.loc[7, "color"] = "r" * 1_000  # at the limit: accepted
    assert prepare(df, tmp_path / "out").rows == len(df)


def test_target_label_longer_than_the_limit_is_an_error(tmp_path: Path) -> None:
    df = frame()
    df["target"] = np.where(df["target"] == 1, "churn" * 1_000, "stay")
    with pytest.raises(DataValidationError, match=r"column 'target'.*5,000 characters"):
        prepare(df, tmp_path / "out")


def test_column_name_longer_than_the_limit_is_an_error(tmp_path: Path) -> None:
    df = frame().rename(columns={"color": "c" * 5_000})
    with pytest.raises(DataValidationError, match=r"column name of 5,000 characters") as info:
        prepare(df, tmp_path / "out")
    assert len(str(info.value)) < 300


# ---------------------------------------------------------------- files that are not files


@contextmanager
def unblocking(fifo: Path) -> Iterator[None]:
    """Should a reader block opening ``fifo`` (the bug), a writer comes and goes after 3 s, so
    the reader sees end-of-file and the test fails instead of hanging."""
    done = threading.Event()

    def release() -> None:
        if done.wait(3):
            return
        while not done.is_set():
            with suppress(OSError):  # ENXIO: nobody is reading right now
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            time.sleep(0.05)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["pipe.parquet", "pipe.csv", "pipe"])
def test_a_fifo_is_refused_without_opening_it(tmp_path: Path, name: str) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    with unblocking(fifo), pytest.raises(DataValidationError) as info:
        read_table(fifo)
    assert str(info.value).startswith(f"{fifo}: not a regular file or folder (a FIFO")


@pytest.mark.timeout(60)
def test_a_symlink_to_a_fifo_is_refused_naming_both(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "data.parquet"
    link.symlink_to(fifo)
    with unblocking(fifo), pytest.raises(DataValidationError) as info:
        prepare(link, tmp_path / "out")
    assert str(info.value).startswith(f"{link} (-> {fifo}): not a regular file or folder (a FIFO")


@pytest.mark.timeout(60)
def test_a_fifo_inside_a_folder_is_refused(tmp_path: Path) -> None:
    write_parquet(frame(), tmp_path / "d" / "date=2025-01-01" / "part-0.parquet")
    fifo = tmp_path / "d" / "date=2025-01-02" / "part-0.parquet"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    with unblocking(fifo), pytest.raises(DataValidationError) as info:
        read_table(tmp_path / "d")
    assert str(info.value).startswith(f"{fifo}: not a regular file or folder (a FIFO")


def test_a_device_and_a_socket_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"^/dev/null: not a regular .*character device"):
        read_table("/dev/null")
    path = tmp_path / "s.parquet"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        with pytest.raises(DataValidationError, match=r"s\.parquet: not a regular .*\(a socket"):
            read_table(path)


def test_broken_and_looping_symlinks_are_named(tmp_path: Path) -> None:
    loop = tmp_path / "loop.parquet"
    loop.symlink_to(loop)
    with pytest.raises(DataValidationError, match=r"loop\.parquet: .*symbolic links"):
        read_table(loop)
    folder = tmp_path / "d"
    write_parquet(frame(), folder / "a.parquet")
    (folder / "b.parquet").symlink_to(tmp_path / "gone.parquet")
    with pytest.raises(DataValidationError, match=r"b\.parquet \(-> .*gone\.parquet\): no such"):
        read_table(folder)


@pytest.mark.timeout(60)
def test_compare_and_drift_readers_refuse_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "holdout.parquet"
    os.mkfifo(fifo)
    for reader in (read_test_data, read_frame):  # compare --test-data, drift --current
        with unblocking(fifo), pytest.raises(DataValidationError, match=r"\(a FIFO\)"):
            reader(fifo)


@pytest.mark.timeout(60)
def test_prepare_command_refuses_a_fifo_with_exit_2(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.root.mkdir()
    fifo = settings.root / "pipe.parquet"
    os.mkfifo(fifo)
    with unblocking(fifo):
        code = main(["prepare", "--data", str(fifo)])
    assert code == 2
    assert "pipe.parquet: not a regular file or folder (a FIFO" in capsys.readouterr().err


# ---------------------------------------------------------------- files of one folder disagree


def _two_files(folder: Path, first: pd.DataFrame, second: pd.DataFrame) -> None:
    write_parquet(first, folder / "a.parquet")
    write_parquet(second, folder / "b.parquet")


@pytest.mark.parametrize("full_first", [True, False])
def test_files_with_different_columns_are_an_error_in_either_order(
    tmp_path: Path, full_first: bool
) -> None:
    full = frame().assign(age=np.arange(200.0))
    other = frame(seed=1).assign(extra=1.0)
    folder = tmp_path / "d"
    _two_files(folder, full, other) if full_first else _two_files(folder, other, full)
    with pytest.raises(DataValidationError) as info:
        prepare(folder, tmp_path / "out")
    with_age, without_age = ("a", "b") if full_first else ("b", "a")
    assert str(info.value) == (
        f"{folder}: its files have different columns: 'age' is missing from "
        f"{without_age}.parquet; 'extra' is missing from {with_age}.parquet "
        "(every file of one source must have the same columns)"
    )


@pytest.mark.parametrize("text_first", [True, False])
def test_files_with_different_column_types_are_an_error_in_either_order(
    tmp_path: Path, text_first: bool
) -> None:
    numbers = frame()
    text = frame(seed=1).assign(x="abc")
    folder = tmp_path / "hive"
    write_parquet(text if text_first else numbers, folder / "date=1" / "part-0.parquet")
    write_parquet(numbers if text_first else text, folder / "date=2" / "part-0.parquet")
    text_type = "(large_)?string"  # pandas 3 writes large_string
    first, second = (text_type, "double") if text_first else ("double", text_type)
    with pytest.raises(DataValidationError) as info:
        read_table(folder)
    assert re.fullmatch(
        f"{re.escape(str(folder))}: column 'x' has type {first} in date=1/part-0.parquet but "
        rf"{second} in date=2/part-0.parquet \(every file of one source must have the same "
        r"column types\)",
        str(info.value),
    ), info.value


@pytest.mark.parametrize("ints_first", [True, False])
def test_compatible_types_combine_the_same_way_in_either_order(
    tmp_path: Path, ints_first: bool
) -> None:
    ints = frame().assign(x=np.arange(200), note=pd.Series([None] * 200, dtype=object))
    floats = frame(seed=1).assign(
        x=np.linspace(0.5, 9.5, 200), note="seen", color=lambda d: d["color"].astype("category")
    )
    folder = tmp_path / "d"
    _two_files(folder, ints, floats) if ints_first else _two_files(folder, floats, ints)
    got = read_table(folder)
    assert str(got["x"].dtype) == "float64" and got["x"].notna().all()
    assert got["note"].tolist().count("seen") == 200 and got["note"].isna().sum() == 200
    assert sorted(set(got["color"])) == ["blue", "green", "red"]


# ---------------------------------------------------------------- corrupted Parquet pages


def flip_bytes_mid_column(path: Path, column: str) -> None:
    """Invert 16 bytes in the middle of ``column``'s first data page (past the page header)."""
    meta = pq.read_metadata(path).row_group(0)
    chunk = next(
        meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == column
    )
    data = bytearray(path.read_bytes())
    middle = chunk.data_page_offset + chunk.total_compressed_size // 2
    for i in range(middle, middle + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def checksummed(df: pd.DataFrame, path: Path) -> Path:
    """``df`` written the way a careful writer does: page checksums, plain float values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, write_page_checksum=True, compression="none", use_dictionary=False)
    return path


def test_corrupted_bytes_in_a_checksummed_file_are_an_error(tmp_path: Path) -> None:
    df = frame(2000)
    path = checksummed(df, tmp_path / "data.parquet")
    flip_bytes_mid_column(path, "x")
    garbage = pq.read_table(path).column("x").to_numpy()  # unverified: wrong numbers, no error
    assert (garbage != df["x"].to_numpy()).sum() >= 2
    with pytest.raises(DataValidationError) as info:
        prepare(path, tmp_path / "out")
    assert str(info.value) == (
        f"{path}: corrupt Parquet file: a page checksum does not match "
        "(the bytes changed after the file was written)"
    )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_corrupted_file_in_a_folder_is_named(tmp_path: Path) -> None:
    checksummed(frame(2000), tmp_path / "d" / "date=2025-01-01" / "part-0.parquet")
    bad = checksummed(frame(2000, seed=1), tmp_path / "d" / "date=2025-01-02" / "part-0.parquet")
    flip_bytes_mid_column(bad, "x")
    with pytest.raises(DataValidationError, match=rf"^{re.escape(str(bad))}: corrupt .*checksum"):
        read_table(tmp_path / "d")


def test_our_parquet_files_carry_page_checksums(settings: Settings) -> None:
    paths = write_demo(settings, rows=3000, batches=1, batch_rows=1000)
    manifest = prepare(list(paths.values()), settings.prepared_dir)
    written = [*paths.values(), *(manifest.split_path(s) for s in ("train", "val", "test"))]
    for path in written:
        flip_bytes_mid_column(path, "income")
        with pytest.raises(OSError, match="checksum"):  # a CRC mismatch, found before decoding
            pq.read_table(path, page_checksum_verification=True)
    with pytest.raises(DataValidationError, match="checksum"):
        load_split(manifest, "train", verify=False)


# ---------------------------------------------------------------- edited prepared manifests


def _edit_manifest(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    file = folder / "manifest.json"
    doc = json.loads(file.read_text())
    change(doc)
    file.write_text(json.dumps(doc, indent=2))


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["imputation"].update(x=123.0),
        lambda d: d["feature_spec"].update(numeric=[], excluded=["x"]),
        lambda d: d["splits"]["test"].update(rows=1),
        lambda d: d.update(selection="something else"),
    ],
    ids=["imputation", "spec", "split-rows", "selection"],
)
def test_an_edited_manifest_is_detected(tmp_path: Path, change: Callable[..., None]) -> None:
    df = frame(400)
    df.loc[::7, "x"] = np.nan
    m = prepare(df, tmp_path / "out")
    _edit_manifest(m.path, change)
    with pytest.raises(DataValidationError) as info:
        load_manifest(m.path)
    assert str(info.value).startswith(
        f"{m.path / 'manifest.json'}: the manifest was edited after it was written "
        f"(recorded content hash {m.sha256[:16]}…, now "
    )
    with pytest.raises(DataValidationError, match="edited after it was written"):
        prepare(df, tmp_path / "out")  # the same input would reuse the edited folder


def test_an_edit_that_rewrites_the_hash_is_detected_by_the_folder_name(tmp_path: Path) -> None:
    m = prepare(frame(400), tmp_path / "out")

    def forge(doc: dict[str, Any]) -> None:
        doc["imputation"]["x"] = 123.0
        kept = {k: v for k, v in doc.items() if k not in ("sha256", "created_at", "source_details")}
        text = json.dumps(kept, sort_keys=True, separators=(",", ":"))
        doc["sha256"] = hashlib.sha256(text.encode()).hexdigest()

    _edit_manifest(m.path, forge)
    with pytest.raises(DataValidationError) as info:
        load_manifest(m.path)
    assert str(info.value).startswith(
        f"{m.path}: the folder's name is not its manifest's content hash ("
    )


def test_a_renamed_prepared_folder_is_refused(tmp_path: Path) -> None:
    m = prepare(frame(400), tmp_path / "out")
    moved = m.path.rename(tmp_path / "out" / "mine")
    with pytest.raises(DataValidationError, match=r"/mine: the folder's name is not its manifest"):
        load_manifest(moved)


def test_load_split_verifies_the_file_by_default(tmp_path: Path) -> None:
    m = prepare(frame(400), tmp_path / "out")
    test = pq.read_table(m.split_path("test"))
    pq.write_table(test.slice(1), m.split_path("test"))  # one row fewer, still valid Parquet
    with pytest.raises(DataValidationError, match=r"test\.parquet: checksum mismatch"):
        load_split(m.path, "test")
    assert len(load_split(m.path, "test", verify=False)) == len(test) - 1


# ---------------------------------------------------------------- settings and command line


@pytest.mark.parametrize("hidden", ["", " ", ",", "64,,32", "64,x", "0", "-8"])
def test_train_refuses_bad_hidden_sizes_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hidden: str
) -> None:
    out = tmp_path / "model"
    code = main(["train", "--data", str(tmp_path / "none"), "--out", str(out), "--hidden", hidden])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --hidden: ") and err.count("\n") == 1, err
    assert "does not exist" not in err  # refused before the data is looked at
    assert not out.exists()


def test_train_accepts_hidden_sizes() -> None:
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--hidden", "8, 4"])
    assert params_from_args(args).hidden_sizes == (8, 4)


def _write_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a folder\n")
    return path


@pytest.mark.parametrize("below", [False, True])
@pytest.mark.parametrize("command", [["status"], ["demo-data", "--rows", "100"], ["prepare"]])
def test_retrain_home_that_is_a_file_is_one_line_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    below: bool,
) -> None:
    file = _write_file(tmp_path / "home")
    home = file / "sub" if below else file
    monkeypatch.setenv("RETRAIN_HOME", str(home))
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err == f"error: RETRAIN_HOME={home}: {file} is a file, not a folder\n"
    assert file.read_text() == "not a folder\n"


def test_settings_errors_are_retrain_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRAIN_HOME", str(_write_file(tmp_path / "f")))
    with pytest.raises(RetrainError, match="is a file, not a folder"):
        get_settings()
    with pytest.raises(RetrainError, match="is a file, not a folder"):
        Settings(home=tmp_path / "f" / "x")
    monkeypatch.setenv("RETRAIN_HOME", str(tmp_path / "new"))
    monkeypatch.setenv("RETRAIN_MODEL_NAME", "no spaces please")
    with pytest.raises(RetrainError, match=r"^RETRAIN_MODEL_NAME: .*'no spaces please'") as info:
        get_settings()
    assert "\n" not in str(info.value)
    monkeypatch.setenv("RETRAIN_MODEL_NAME", "demo")
    assert get_settings().root == tmp_path / "new" and not (tmp_path / "new").exists()


# ---------------------------------------------------------------- found by the property test


def test_an_integer_beyond_64_bits_is_an_error_naming_the_column(tmp_path: Path) -> None:
    df = frame().assign(big=pd.Series([1] * 199 + [2**64], dtype=object))
    with pytest.raises(DataValidationError, match=r"column 'big' has an integer outside the 64"):
        prepare(df, tmp_path / "out")


def test_an_infinite_decimal_is_an_error_naming_the_column(tmp_path: Path) -> None:
    df = frame().assign(d=pd.Series([Decimal(1)] * 199 + [Decimal("-Infinity")], dtype=object))
    with pytest.raises(DataValidationError, match=r"column 'd' has a value that cannot be stored"):
        prepare(df, tmp_path / "out")


@pytest.mark.parametrize("dtype", ["float64", "Int64", "boolean"])
def test_an_all_missing_column_named_empty_is_refused(tmp_path: Path, dtype: str) -> None:
    df = frame().assign(**{"": pd.Series([None] * 200, dtype=dtype)})
    with pytest.raises(DataValidationError, match=r"column '' has only missing values"):
        prepare(df, tmp_path / "out")


def test_an_id_column_named_empty_is_used(tmp_path: Path) -> None:
    df = frame().assign(**{"": np.arange(200)})
    m = prepare(df, tmp_path / "out", id_column="")
    assert m.split["key"] == [""] and m.spec.id_column == ""


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("rows", [200, 201])
def test_values_near_the_float_maximum_are_refused_no_model_reads_them(
    tmp_path: Path, rows: int
) -> None:
    """Numbers beyond float32's range (what the network computes in) are refused when prepared,
    naming the column and a row (issue 25, rule 6: they used to be prepared, and training then
    failed on them); the median of such values stays finite (``_median``, below)."""
    df = frame(rows).assign(x=1.7e308, id=np.arange(rows))
    df.loc[1::2, "x"] = 1.6e308
    df.loc[::9, "x"] = np.nan
    with pytest.raises(DataValidationError, match=r"column 'x' has .* at row 1, beyond the range"):
        prepare(df, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_median_helper_agrees_with_numpy() -> None:
    from model.data.validate import _median

    rng = np.random.default_rng(0)
    for n in range(1, 60):
        values = rng.normal(size=n) * 10.0 ** rng.integers(-300, 300)
        assert _median(values) == np.median(values)
    assert _median(np.array([1.6e308, 1.7e308])) == pytest.approx(1.65e308)


def test_a_column_name_with_a_newline_is_quoted_on_one_line(tmp_path: Path) -> None:
    df = frame().assign(**{"a\nb": pd.Series([b"x"] * 200, dtype=object)})
    with pytest.raises(DataValidationError) as info:
        prepare(df, tmp_path / "out")
    assert str(info.value) == (
        "<DataFrame>: column 'a\\nb' has type binary, which cannot be a feature; "
        "exclude it (--exclude 'a\\nb') or remove it from the data"
    )


def test_a_message_listing_many_long_column_names_stays_short(tmp_path: Path) -> None:
    names = [f"{i}{'é' * 60}" for i in range(6)]
    df = pd.DataFrame(np.zeros((3, 6)), columns=names).assign(target=[0, 1, 0])
    with pytest.raises(DataValidationError, match=r"split '(train|val|test)' is empty") as info:
        prepare(df, tmp_path / "out")
    assert len(str(info.value)) <= 300 and "more]" in str(info.value)
    with pytest.raises(DataValidationError, match="are not in the data") as info:
        prepare(df, tmp_path / "out", exclude=["nope" * 30, "nada" * 30])
    assert len(str(info.value)) <= 300


def test_a_wide_struct_type_is_named_briefly(tmp_path: Path) -> None:
    wide = pa.table(
        {
            "s": pa.array([{f"field_{i}": i for i in range(200)}] * 100),
            "target": [0, 1] * 50,
        }
    )
    path = tmp_path / "wide.parquet"
    pq.write_table(wide, path)
    with pytest.raises(DataValidationError, match=r"column 's' has type struct<") as info:
        prepare(path, tmp_path / "out")
    assert len(str(info.value).replace(str(path), "")) < 250


def test_encode_target_refuses_unconvertible_labels_as_mixed_types() -> None:
    with pytest.raises(DataValidationError, match="target column 'y' has mixed types"):
        encode_target(pd.Series([1, 2**70], name="y", dtype=object))


# ---------------------------------------------------------------------------- OS errors


def test_a_full_disk_while_writing_prepared_data_is_one_line_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import model.data.prepared as prepared_module
    from model.data import prepare
    from model.data.demo import make_customers

    source = tmp_path / "in.parquet"
    make_customers(500, seed=1).to_parquet(source)
    real = prepared_module._write_splits

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(prepared_module, "_write_splits", full)
    with pytest.raises(DataValidationError, match="cannot write the prepared data: No space left"):
        prepare([source], tmp_path / "prepared")
    assert list((tmp_path / "prepared").iterdir()) == []
    monkeypatch.setattr(prepared_module, "_write_splits", real)
    assert prepare([source], tmp_path / "prepared").path.is_dir()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2GiB", 2 << 30),
        ("2G", 2 << 30),
        ("2gb", 2 << 30),
        ("512 MiB", 512 << 20),
        ("1.5GiB", 3 << 29),
        ("33554432", 33554432),
        (" 64m ", 64 << 20),
    ],
)
def test_memory_budget_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: int
) -> None:
    monkeypatch.setenv("RETRAIN_HOME", str(tmp_path))
    monkeypatch.setenv("RETRAIN_MEMORY_BUDGET", text)
    assert get_settings().memory_budget == expected


@pytest.mark.parametrize(
    "text, says",
    [
        ("lots", "a size such as 512MiB"),
        ("12XB", "a size such as 512MiB"),
        ("1MiB", "16 MiB"),
        ("-5", "a size such as"),
    ],
)
def test_a_bad_memory_budget_is_one_line_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    says: str,
) -> None:
    monkeypatch.setenv("RETRAIN_HOME", str(tmp_path))
    monkeypatch.setenv("RETRAIN_MEMORY_BUDGET", text)
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: RETRAIN_MEMORY_BUDGET: ") and says in err, err
    assert err.count("\n") == 1
