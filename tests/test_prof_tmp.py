import time
from test_s3 import *  # noqa
import test_s3 as T

def test_prof(endpoint, s3, tmp_path):
    t = time.time()
    bucket = T.new_bucket(s3, versioned=True)
    settings = T.s3_settings(bucket, endpoint, tmp_path)
    defs = T.build_definitions(settings)
    lake = T.build_resources(settings)["lake"]
    for sample in T.SAMPLES:
        lake.land(sample, f"samples/{sample.name}")
    print("land", time.time() - t); t = time.time()
    with T.dg.instance_for_test() as instance:
        print("instance", time.time() - t); t = time.time()
        partitions = sorted(T.partition_key_for(o.key) for o in lake.list_raw())
        instance.add_dynamic_partitions("landed_files", partitions)
        for key in partitions:
            T.run_partition(defs, instance, key)
            print(key, time.time() - t); t = time.time()
