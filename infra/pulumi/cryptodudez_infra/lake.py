"""The lake: one versioned, KMS-encrypted, private, TLS-only bucket and its landing queue."""

import pulumi
import pulumi_aws as aws

from cryptodudez_infra.tags import named, policy_document


class Lake(pulumi.ComponentResource):
    """The lake bucket (``CRYPTODUDEZ_LAKE=s3://<bucket>/<prefix>``).

    Versioning is on because re-deliveries rely on it (the local lake's ``raw/.versions/`` is
    S3 versioning's job here). Objects are encrypted with the stack's KMS key (with an S3
    bucket key), public access is blocked, a bucket policy denies every request not made over
    TLS, superseded versions under ``raw/`` move to Glacier and then expire, and every object
    created under ``raw/`` is announced on the landing queue. Nothing consumes that queue yet:
    the landing sensor lists ``raw/`` on S3 each tick, and the messages expire unread after
    14 days (``message_retention_seconds`` below).
    """

    def __init__(self, name: str, *, prefix: str, lake_prefix: str, tags: dict[str, str],
                 raw_noncurrent_glacier_days: int, raw_expiration_days: int,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cryptodudez:lake:Lake", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.raw_prefix = f"{lake_prefix}/raw/" if lake_prefix else "raw/"
        base = f"{lake_prefix}/" if lake_prefix else ""
        self.job_scratch_prefix = f"{base}features/stock_features/.jobs/"

        self.key = aws.kms.Key(
            f"{name}-key", description=f"{prefix}: lake objects",
            enable_key_rotation=True, deletion_window_in_days=30,
            tags=named(tags, f"{prefix}-lake"), opts=child)
        aws.kms.Alias(f"{name}-key-alias", name=f"alias/{prefix}-lake",
                      target_key_id=self.key.key_id, opts=child)

        self.bucket = aws.s3.Bucket(f"{name}-bucket", bucket_prefix=f"{prefix}-lake-",
                                    force_destroy=False, tags=named(tags, f"{prefix}-lake"),
                                    opts=child)
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=self.bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"}, opts=child)
        self.versioning = aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"}, opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption", bucket=self.bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {
                "sse_algorithm": "aws:kms", "kms_master_key_id": self.key.arn},
                "bucket_key_enabled": True}], opts=child)
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access", bucket=self.bucket.id, block_public_acls=True,
            block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=child)
        aws.s3.BucketPolicy(
            f"{name}-tls-only", bucket=self.bucket.id,
            policy=policy_document([{
                "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
                "Action": "s3:*",
                "Resource": [self.bucket.arn, self.bucket.arn.apply(lambda arn: f"{arn}/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]))
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle", bucket=self.bucket.id,
            rules=[{
                "id": "raw-noncurrent-versions", "status": "Enabled",
                "filter": {"prefix": self.raw_prefix},
                "noncurrent_version_transitions": [{
                    "noncurrent_days": raw_noncurrent_glacier_days,
                    "storage_class": "GLACIER"}],
                "noncurrent_version_expiration": {"noncurrent_days": raw_expiration_days},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
            }, {
                # a Spark job's scratch results (cryptodudez.lake.layout.JOB_SCRATCH): a run
                # removes its own; what a killed run leaves, and every removed version, goes
                "id": "job-scratch", "status": "Enabled",
                "filter": {"prefix": self.job_scratch_prefix},
                "expiration": {"days": 2},
                "noncurrent_version_expiration": {"noncurrent_days": 1},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
            }], opts=pulumi.ResourceOptions(parent=self, depends_on=[self.versioning]))

        self.landing_dlq = aws.sqs.Queue(
            f"{name}-landing-dlq", name=f"{prefix}-landing-dlq",
            message_retention_seconds=14 * 24 * 3600, sqs_managed_sse_enabled=True,
            tags=named(tags, f"{prefix}-landing-dlq"), opts=child)
        self.landing_queue = aws.sqs.Queue(
            f"{name}-landing", name=f"{prefix}-landing", sqs_managed_sse_enabled=True,
            visibility_timeout_seconds=300, message_retention_seconds=4 * 24 * 3600,
            redrive_policy=pulumi.Output.json_dumps({
                "deadLetterTargetArn": self.landing_dlq.arn, "maxReceiveCount": 5}),
            tags=named(tags, f"{prefix}-landing"), opts=child)
        queue_policy = aws.sqs.QueuePolicy(
            f"{name}-landing-policy", queue_url=self.landing_queue.url,
            policy=policy_document([{
                "Sid": "LakeObjectCreated", "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"}, "Action": ["sqs:SendMessage"],
                "Resource": [self.landing_queue.arn],
                "Condition": {"ArnEquals": {"aws:SourceArn": self.bucket.arn}}}]),
            opts=child)
        aws.s3.BucketNotification(
            f"{name}-landing-notification", bucket=self.bucket.id,
            queues=[{"queue_arn": self.landing_queue.arn, "events": ["s3:ObjectCreated:*"],
                     "filter_prefix": self.raw_prefix}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[queue_policy]))

        self.uri = self.bucket.bucket.apply(
            lambda bucket: f"s3://{bucket}/{lake_prefix}" if lake_prefix else f"s3://{bucket}")
        self.register_outputs({"bucket": self.bucket.bucket, "uri": self.uri,
                               "landing_queue_url": self.landing_queue.url})
