"""The compliance dossier: evidence from every layer below, snapshotted at one instant,
rendered to PDF/A. Nothing imports it."""
