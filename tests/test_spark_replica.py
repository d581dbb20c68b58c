"""SparkBook.from_replica reads a replicated Salesforce schema held as Spark tables by the warehouse reader's rules.

The demo org is written as a Fivetran replica in DuckDB (soft-deleted rows,
older versions of records appended), each table copied to Parquet and read
by Spark. The references: the CSV export the replica was made from (the
same records give the same fingerprint, whatever their order), and for
errors the single-machine reader of the same DuckDB file, whose problems
and lines the Spark reader must give too; a line is the record's position
in its table's Id order, counted here from the ids themselves.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import duckdb
import pytest

import renewforecast as rf
from renewforecast.spark import SparkBook

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DELETED = {"Contract": 3, "SBQQ__Subscription__c": 2, "Opportunity": 2, "Account": 1, "spend": 2}


def _parquet(database: Path, folder: Path) -> dict[str, Path]:
    """Each table of a DuckDB file as a Parquet folder (types kept: DATE, TIMESTAMPTZ, DOUBLE, BOOLEAN)."""
    out = {}
    with duckdb.connect(str(database), read_only=True) as db:
        for (name,) in db.execute("SELECT table_name FROM information_schema.tables").fetchall():
            (folder / name).mkdir(parents=True)
            db.execute(f"COPY {name} TO '{folder / name / 'part-0.parquet'}' (FORMAT parquet)")
            out[name] = folder / name
    return out


@pytest.fixture(scope="module")
def replica(demo_org, demo_book, tmp_path_factory) -> Path:
    """The demo org as Fivetran writes it, with older versions of some contracts appended."""
    database = tmp_path_factory.mktemp("replica") / "crm.duckdb"
    written = rf.write_replica(demo_org.path, f"duckdb:///{database}", layout="fivetran", deleted=DELETED)
    first = sorted(demo_book.contracts["contract_id"])[:3]
    (gone,) = written.deleted_ids["contract"][:1]
    with duckdb.connect(str(database)) as db:
        older = "_fivetran_synced - INTERVAL 1 DAY AS _fivetran_synced"
        # two records' earlier versions with another status; one deleted then, and not now
        db.execute(
            f"INSERT INTO contract SELECT * REPLACE ({older}, 'Draft' AS status) FROM contract WHERE id IN (?, ?)",
            first[:2],
        )
        db.execute(
            f"INSERT INTO contract SELECT * REPLACE ({older}, true AS _fivetran_deleted) FROM contract WHERE id = ?",
            [first[2]],
        )
        # a record deleted now, though its earlier version was not
        db.execute(
            f"INSERT INTO contract SELECT * REPLACE ({older}, false AS _fivetran_deleted, false AS is_deleted) "
            "FROM contract WHERE id = ?",
            [gone],
        )
    return database


def test_a_replica_in_the_spark_catalog_gives_the_exports_book(spark, replica, demo_book, tmp_path):
    database = f"crm_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE DATABASE {database}")
    for name, folder in _parquet(replica, tmp_path).items():
        spark.sql(f"CREATE TABLE {database}.{name} USING parquet LOCATION '{folder}'")

    book = SparkBook.from_replica(spark, database, partitions=3).to_book()

    assert book.fingerprint == demo_book.fingerprint
    assert book.currency == demo_book.currency
    # neither the soft-deleted copies nor the older versions were counted
    assert len(book.contracts) == len(demo_book.contracts)
    assert "draft" not in set(book.contracts["status"].str.lower())


def test_broken_records_are_named_as_the_single_machine_reader_names_them(spark, replica, demo_book, tmp_path):
    broken = tmp_path / "broken.duckdb"
    shutil.copy(replica, broken)
    contracts = sorted(demo_book.contracts["contract_id"])
    subscriptions = sorted(demo_book.subscriptions["subscription_id"])
    bad_date, orphan = contracts[7], subscriptions[5]
    renewed = demo_book.contracts.drop_duplicates("account_id").head(4)
    opportunities = demo_book.opportunities
    with duckdb.connect(str(broken)) as db:
        db.execute("UPDATE contract SET start_date = DATE '1900-01-01' WHERE id = ?", [bad_date])
        db.execute("UPDATE sbqq_subscription_c SET sbqq_contract_c = '800MISSING' WHERE id = ?", [orphan])
        # links across accounts, which are no error: opportunities renewing another account's contract
        for (contract, account), opp in zip(
            renewed[["contract_id", "account_id"]].itertuples(index=False),
            opportunities[~opportunities["account_id"].isin(renewed["account_id"])]["opportunity_id"],
            strict=False,
        ):
            assert account != opportunities.set_index("opportunity_id").loc[opp, "account_id"]
            db.execute("UPDATE opportunity SET sbqq_renewed_contract_c = ? WHERE id = ?", [contract, opp])
    with pytest.raises(rf.BookValidationError) as single:
        rf.load_book(f"duckdb:///{broken}")
    tables = {name: spark.read.parquet(str(folder)) for name, folder in _parquet(broken, tmp_path / "pq").items()}

    with pytest.raises(rf.BookValidationError) as ours:
        SparkBook.from_replica(spark, tables, layout="fivetran", partitions=3)

    found = {(p.file, p.line, p.record_id, p.column, p.rule) for p in ours.value.problems}
    assert found == {
        ("contract", contracts.index(bad_date) + 1, bad_date, "start_date", "date_out_of_window"),
        ("sbqq_subscription_c", subscriptions.index(orphan) + 1, orphan, "sbqq_contract_c", "unknown_reference"),
    }
    assert [str(p) for p in ours.value.problems] == [str(p) for p in single.value.problems]
