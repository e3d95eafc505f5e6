from __future__ import annotations

from billing import views
from core.routes import route

urlpatterns = [
    *route("billing/credits/balance", views.BalanceView.as_view(), name="billing-balance"),
    *route("billing/credits/usage", views.UsageView.as_view({"get": "list"}), name="billing-usage"),
    *route("billing/usage/summary", views.UsageSummaryView.as_view(), name="billing-usage-summary"),
    *route("billing/credits/grant", views.GrantView.as_view(), name="billing-grant"),
    *route("billing/model-rates", views.ModelRateListView.as_view({"get": "list"}), name="billing-model-rates"),
    *route("billing/packages", views.PackageListView.as_view({"get": "list"}), name="billing-packages"),
    *route("billing/capacity", views.CapacityView.as_view(), name="billing-capacity"),
    *route("billing/alerts", views.AlertListView.as_view({"get": "list"}), name="billing-alerts"),
    *route("billing/alerts/acknowledge", views.AcknowledgeView.as_view(), name="billing-alerts-acknowledge"),
    *route("billing/circuit", views.CircuitView.as_view(), name="billing-circuit"),
    *route("billing/circuit/toggle", views.CircuitToggleView.as_view(), name="billing-circuit-toggle"),
]
