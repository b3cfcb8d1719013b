"""ASGI entry point for servers (``uvicorn serving.asgi:app``): settings from the environment."""

from cryptodudez.settings import Settings
from serving.app import ServingSettings, create_app

_settings = Settings.from_env()
app = create_app(ServingSettings(lake=_settings.lake, endpoint_url=_settings.endpoint_url,
                                 region=_settings.region, warehouse=_settings.warehouse_path))
