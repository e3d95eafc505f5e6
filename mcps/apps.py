from django.apps import AppConfig


class McpsConfig(AppConfig):
    name = "mcps"
    default_auto_field = "django.db.models.BigAutoField"
