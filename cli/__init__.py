"""`avtorlm`, the administrator's command line."""
