"""The CryptoDudez data platform."""

import warnings

# pandera imports pyspark.pandas whenever pyspark is installed (the Spark twins' extra), and
# pyspark 4.3 warns about pandas 3 on import: nothing here uses pandas-on-Spark.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                        category=FutureWarning)
