"""The cryptodudez AWS stack: configuration in, components, outputs out (see README.md)."""

import pulumi
import pulumi_aws as aws
from cryptodudez_infra.catalog import Catalog
from cryptodudez_infra.config import StackConfig
from cryptodudez_infra.database import Database
from cryptodudez_infra.iam import LakeArns
from cryptodudez_infra.lake import Lake
from cryptodudez_infra.network import Network
from cryptodudez_infra.registry import Registry
from cryptodudez_infra.services import Services
from cryptodudez_infra.spark import Spark

cfg = StackConfig.load()
region = aws.get_region().region
account = aws.get_caller_identity().account_id
zones = aws.get_availability_zones(state="available").names

lake = Lake("lake", prefix=cfg.prefix, lake_prefix=cfg.lake_prefix, tags=cfg.tags,
            raw_noncurrent_glacier_days=cfg.raw_noncurrent_glacier_days,
            raw_expiration_days=cfg.raw_expiration_days)
catalog = Catalog("catalog", database=cfg.glue_database, lake_uri=lake.uri, tags=cfg.tags)
network = Network("network", prefix=cfg.prefix, region=region, zones=zones, cidr=cfg.vpc_cidr,
                  allowed_cidr=cfg.allowed_cidr, tags=cfg.tags)
database = Database("database", prefix=cfg.prefix,
                    subnet_ids=[s.id for s in network.private_subnets],
                    security_group_id=network.db_sg.id, instance_class=cfg.db_instance_class,
                    allocated_storage=cfg.db_allocated_storage, tags=cfg.tags)
glue_arn = f"arn:aws:glue:{region}:{account}"
arns = LakeArns(
    bucket=lake.bucket.arn, lake_prefix=cfg.lake_prefix, key=lake.key.arn,
    glue_catalog=pulumi.Output.from_input(f"{glue_arn}:catalog"),
    glue_database=pulumi.Output.from_input(f"{glue_arn}:database/{cfg.glue_database}"),
    glue_tables=pulumi.Output.from_input(f"{glue_arn}:table/{cfg.glue_database}/*"),
    landing_queue=lake.landing_queue.arn)
registry = Registry("registry", prefix=cfg.prefix, tags=cfg.tags)
spark = Spark("spark", prefix=cfg.prefix, release_label=cfg.emr_release_label, arns=arns,
              logs_arn=f"arn:aws:logs:{region}:{account}", lake_uri=lake.uri,
              log_retention_days=cfg.log_retention_days, tags=cfg.tags)
image = cfg.image_uri or pulumi.Output.concat(registry.url, ":", cfg.image_tag)
services = Services(
    "services", prefix=cfg.prefix, region=region, image=image, vpc_id=network.vpc.id,
    public_subnet_ids=[s.id for s in network.public_subnets],
    private_subnet_ids=[s.id for s in network.private_subnets], network=network,
    lake_uri=lake.uri, glue_database=cfg.glue_database, arns=arns,
    db_address=database.instance.address, db_secret_arn=database.secret_arn,
    db_key_arn=database.key.arn, landing_queue_url=lake.landing_queue.url,
    api_desired_count=cfg.api_desired_count, log_retention_days=cfg.log_retention_days,
    certificate_arn=cfg.certificate_arn, spark_env=spark.environment(),
    spark_statements=spark.starter_statements(), tags=cfg.tags)

pulumi.export("lake_uri", lake.uri)
pulumi.export("lake_bucket", lake.bucket.bucket)
pulumi.export("landing_queue_url", lake.landing_queue.url)
pulumi.export("glue_database", catalog.database.name)
pulumi.export("url", services.url)
pulumi.export("image_repository_url", registry.url)
pulumi.export("image", image)
pulumi.export("dagster_db_endpoint", database.instance.address)
pulumi.export("dagster_db_secret_arn", database.secret_arn)
pulumi.export("emr_application_id", spark.application.id)
pulumi.export("emr_execution_role_arn", spark.execution_role.arn)
