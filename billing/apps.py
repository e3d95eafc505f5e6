from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """The members' pages (orgs, a floor below) show what each member spent: the ledger is read here."""
        from billing.selectors import members_spent_this_period  # noqa: PLC0415  # the app registry is ready now
        from orgs.selectors import provide_member_spend  # noqa: PLC0415

        provide_member_spend(members_spent_this_period)
