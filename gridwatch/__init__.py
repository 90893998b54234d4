"""gridwatch."""
