"""soundcheck: everything Chalice packages with the app."""
