"""The image registry: one private ECR repository for the image every service runs."""

import json

import pulumi
import pulumi_aws as aws

from cryptodudez_infra.tags import named

KEEP_IMAGES = 30


class Registry(pulumi.ComponentResource):
    """An ECR repository: immutable tags, scanned on push, KMS-encrypted, pruned.

    Tags are immutable, so a deployed tag always names the image that was tested (push a new
    tag per release; the services' ``imageUri`` or ``imageTag`` selects it). Only the newest
    ``KEEP_IMAGES`` images are kept.
    """

    def __init__(self, name: str, *, prefix: str, tags: dict[str, str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cryptodudez:registry:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = aws.ecr.Repository(
            f"{name}-repository", name=prefix, image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS"}], force_delete=False,
            tags=named(tags, prefix), opts=child)
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle", repository=self.repository.name,
            policy=json.dumps({"rules": [{
                "rulePriority": 1, "description": f"keep the newest {KEEP_IMAGES} images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                              "countNumber": KEEP_IMAGES},
                "action": {"type": "expire"}}]}),
            opts=child)
        self.url = self.repository.repository_url
        self.register_outputs({"url": self.url})
