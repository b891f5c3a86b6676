"""A refused operation: the administrator or host is told why, and nothing changed."""


class Refused(Exception):
    """An operation that was refused; the message is a sentence a person can act on."""
