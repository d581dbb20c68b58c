"""A local Spark session for the tests: two cores, as on a small executor, stopped at the end."""

from __future__ import annotations

import os
import sys
import tempfile

import pytest

# Spark's Python workers must run this interpreter (with the project installed), not `python3` on PATH.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def local_session():
    """``local[2]`` with few shuffle partitions (the test Books are small) and no UI or progress bars."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master("local[2]")
        .appName("renewforecast-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.warehouse.dir", tempfile.mkdtemp(prefix="spark-warehouse-"))
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )


@pytest.fixture(scope="session")
def spark():
    session = local_session()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
