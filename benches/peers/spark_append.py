"""The Spark peer for the append benches: Structured Streaming's file source (JSON, schema
inferred), trigger availableNow, local[2], into a Parquet sink with its own checkpoint:
Spark's exactly-once file ingestion. (The Delta sink needs jars from Maven, which the bench
machine cannot reach; Parquet is the closest sink that ships with pyspark.)
usage: spark_append.py LANDING_DIR OUT_DIR CHECKPOINT_DIR
"""
import sys

from pyspark.sql import SparkSession


def main() -> None:
    landing, out, checkpoint = sys.argv[1], sys.argv[2], sys.argv[3]
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("inlet-bench")
        .config("spark.sql.streaming.schemaInference", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    stream = spark.readStream.format("json").option("recursiveFileLookup", "true").load(landing)
    query = (
        stream.writeStream.format("parquet")
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start(out)
    )
    query.awaitTermination()
    spark.stop()


if __name__ == "__main__":
    main()
