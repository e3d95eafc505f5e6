"""Files, below chat and workspaces: upload checks (size, type), the organization's storage quota,
text extraction, and the marker (``StoredFile``) by which the quota finds every model that keeps
an organization's files."""
