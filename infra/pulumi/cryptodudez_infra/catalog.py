"""The Glue catalogue the ``GlueMetastore`` resource fills."""

import pulumi
import pulumi_aws as aws


class Catalog(pulumi.ComponentResource):
    """The Glue database (``CRYPTODUDEZ_GLUE_DATABASE``).

    The pipeline creates its tables itself: one per validated dataset plus ``files`` and
    ``columns``; the IAM policies grant exactly that on this database's tables.
    """

    def __init__(self, name: str, *, database: str, lake_uri: pulumi.Input[str],
                 tags: dict[str, str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cryptodudez:catalog:Catalog", name, None, opts)
        self.database = aws.glue.CatalogDatabase(
            f"{name}-database", name=database, location_uri=lake_uri,
            description="cryptodudez lake: validated datasets, files and columns",
            tags=tags, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"database": self.database.name})
