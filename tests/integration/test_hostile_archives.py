"""A hostile archive member through the whole asset: the run succeeds, the good rows land."""

import io
import random
import warnings
import zipfile

import dagster as dg
import polars as pl

from cryptodudez.archives import unpack
from cryptodudez.assets.lake import lake_ingest
from cryptodudez.datasets import csv as csvframe
from cryptodudez.datasets.specs import STOCK_HEADER
from cryptodudez.resources.lake import QUARANTINE, VALIDATED, partition_key_for
from tests.helpers import QUIET, table

HEADER = ",".join(STOCK_HEADER)


def _random_bytes() -> bytes:
    """Bytes with a bare carriage return (no quote, no NUL) in the first line: the old crash."""
    rng = random.Random(7)
    noise = bytes(rng.choice([b for b in range(256) if b not in (0, 10, 13, 34)])
                  for _ in range(500))
    return noise[:40] + b"\r" + noise[40:] + b"\n" + bytes(rng.randrange(256) for _ in range(500))


def test_random_bytes_member_does_not_fail_the_run(defs, instance, tmp_path) -> None:
    good = {f"stocks/{sym}.csv": f"{HEADER}\n2020-01-02,10.0,11.0,9.5,10.5,10.4,1000\n"
                                 f"2020-01-03,10.5,12.0,10.0,11.5,11.4,{n}\n".encode()
            for n, sym in enumerate(["AAA", "BBB"], start=1)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("stocks/AAA.csv", good["stocks/AAA.csv"])
        z.writestr("stocks/JUNK.csv", _random_bytes())
        z.writestr("stocks/BBB.csv", good["stocks/BBB.csv"])
    path = tmp_path / "hostile.zip"
    path.write_bytes(buf.getvalue())
    lake = defs.resources["lake"]
    lake.land(path, "vendor/hostile.zip")
    pk = partition_key_for("vendor/hostile.zip")
    instance.add_dynamic_partitions("landed_files", [pk])

    result = dg.materialize([lake_ingest], partition_key=pk, instance=instance,
                            resources={"lake": lake, "metastore": defs.resources["metastore"]},
                            run_config=QUIET, raise_on_error=False)

    assert result.success
    stocks = table(defs, VALIDATED, "stock_prices")
    assert sorted(stocks["Symbol"].to_list()) == ["AAA", "AAA", "BBB", "BBB"]
    junk = table(defs, QUARANTINE, "unrecognised")
    archive_uri = lake.url("raw", "vendor/hostile.zip")
    assert junk["source"].to_list() == [f"zip://stocks/JUNK.csv::{archive_uri}"]
    files = defs.resources["metastore"].files().filter(pl.col("member").is_not_null())
    status = dict(zip(files["member"], files["status"], strict=True))
    assert status == {"stocks/AAA.csv": "validated", "stocks/BBB.csv": "validated",
                      "stocks/JUNK.csv": "rejected"}
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["raw_files_all_members_recognised"] is False
    assert checks["stock_prices_rows_accounted"] is True


def test_a_row_lost_in_ingest_fails_rows_accounted(defs, instance, tmp_path,
                                                   monkeypatch) -> None:
    """The planted bug (unterminated-quote rows dropped, not quarantined) fails the check."""
    real = csvframe.split_records
    monkeypatch.setattr(csvframe, "split_records",
                        lambda texts: real(texts).filter(pl.col("closed")))
    path = tmp_path / "AAA.csv"
    path.write_bytes(f'{HEADER}\n2020-01-02,1,2,1,1,1,5\n2020-01-03,"1,2,1,1,1,5\n'.encode())
    lake = defs.resources["lake"]
    lake.land(path, "stocks/AAA.csv")
    pk = partition_key_for("stocks/AAA.csv")
    instance.add_dynamic_partitions("landed_files", [pk])

    result = dg.materialize([lake_ingest], partition_key=pk, instance=instance,
                            resources={"lake": lake, "metastore": defs.resources["metastore"]},
                            run_config=QUIET, raise_on_error=False)

    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["stock_prices_rows_accounted"] is False
    files = defs.resources["metastore"].files()
    assert files.select("rows_read", "rows_valid", "rows_quarantined", "status").rows() == [
        (2, 1, 0, "rows_unaccounted")]


def _ingest_zip(defs, instance, tmp_path, key: str,
                members: list[tuple[str, bytes]]) -> dg.ExecuteInProcessResult:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about a repeated name
        for name, data in members:
            z.writestr(name, data)
    path = tmp_path / key.rsplit("/", 1)[-1]
    path.write_bytes(buf.getvalue())
    lake = defs.resources["lake"]
    lake.land(path, key)
    pk = partition_key_for(key)
    instance.add_dynamic_partitions("landed_files", [pk])
    return dg.materialize([lake_ingest], partition_key=pk, instance=instance,
                          resources={"lake": lake, "metastore": defs.resources["metastore"]},
                          run_config=QUIET, raise_on_error=False)


def test_a_zip_without_files_is_rejected_not_a_failed_run(defs, instance, tmp_path) -> None:
    """It was a failed run on every attempt (``pl.concat`` of no member tables)."""
    result = _ingest_zip(defs, instance, tmp_path, "vendor/empty.zip", [])
    assert result.success
    files = defs.resources["metastore"].files()
    assert files.select("status", "reason").rows() == [("rejected", "zip archive holds no files")]


def test_two_members_of_one_name_are_both_rejected_and_nothing_is_lost(defs, instance,
                                                                         tmp_path) -> None:
    """Known by one name, their rows overwrote each other and the run failed its checks."""
    rows = "2020-01-02,10.0,11.0,9.5,10.5,10.4,1000\n"
    result = _ingest_zip(defs, instance, tmp_path, "vendor/twice.zip", [
        ("stocks/AAA.csv", f"{HEADER}\n{rows}".encode()),
        ("stocks/AAA.csv", f"{HEADER}\n{rows.replace('1000', '2000')}".encode()),
        ("stocks/BBB.csv", f"{HEADER}\n{rows}".encode())])
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["stock_prices_rows_accounted"] is True
    assert table(defs, VALIDATED, "stock_prices")["Symbol"].to_list() == ["BBB"]
    files = defs.resources["metastore"].files().filter(pl.col("member").is_not_null())
    assert sorted(files.select("member", "status", "reason").rows()) == [
        ("stocks/AAA.csv", "rejected", "zip archive holds 2 members named 'stocks/AAA.csv': "
                                       "which one is meant is ambiguous, so none of them is read"),
        ("stocks/BBB.csv", "validated", None)]


def test_an_encrypted_member_is_rejected_with_a_plain_reason() -> None:
    """zipfile's own error named a ``<ZipInfo ...>`` repr; the sibling is still read."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("stocks/AAA.csv", f"{HEADER}\n2020-01-02,1,2,1,1,1,5\n")
        z.writestr("stocks/SECRET.csv", f"{HEADER}\n2020-01-02,1,2,1,1,1,5\n")
    data = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        secret = z.getinfo("stocks/SECRET.csv")
    # set the encryption bit (flags bit 0) in the member's local and central headers
    data[secret.header_offset + 6] |= 0x1
    central = [i for i in range(len(data)) if data[i:i + 4] == b"PK\x01\x02"]
    data[central[1] + 8] |= 0x1  # the second central entry is SECRET's
    out = unpack("file:///lake/raw/secret.zip", bytes(data))
    assert [m.name for m in out.members] == ["stocks/AAA.csv"]
    assert out.rejected == [("zip://stocks/SECRET.csv::file:///lake/raw/secret.zip",
                             "stocks/SECRET.csv",
                             "encrypted archive member: it cannot be read without its password")]


def test_repeated_junk_is_skipped_once_not_rejected() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in (".DS_Store", ".DS_Store", "__MACOSX/._a.csv", "__MACOSX/._a.csv"):
            z.writestr(name, b"\x00junk")
        z.writestr("stocks/AAA.csv", f"{HEADER}\n2020-01-02,1,2,1,1,1,5\n")
    out = unpack("file:///lake/raw/mac.zip", buf.getvalue())
    assert out.rejected == []
    assert sorted(name for _, name, _ in out.skipped) == [".DS_Store", "__MACOSX/._a.csv"]
    assert [m.name for m in out.members] == ["stocks/AAA.csv"]
