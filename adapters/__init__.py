"""The manager's ties to the outside world: the SQL store and the license service."""
