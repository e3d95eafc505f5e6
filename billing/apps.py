from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """The members' and API keys' pages (orgs, a floor below) show what each member or key spent:
        the ledger is read here."""
        from billing.selectors import keys_spent_this_period, members_spent_this_period  # noqa: PLC0415  # the app registry is ready now
        from orgs.selectors import provide_spend_readers  # noqa: PLC0415

        provide_spend_readers(members=members_spent_this_period, keys=keys_spent_this_period)
