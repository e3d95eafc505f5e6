"""What every admin page enforces, one module per piece: ``audited`` (a reason, the app's services and
the audit trail for every add, change and delete), ``org_owned`` (an org-owned record stays in its
organization and points only into it), ``read_only`` (history), ``actions`` (an action that asks for a
form first), ``audit_trail`` (what a change writes), ``service_saves`` (saving through a service),
``display`` (names and credits as operators read them)."""
