"""Errors raised on bad input; their messages are meant for the person who wrote the input."""


class InputError(ValueError):
    """Input data or configuration clonetrack refuses; the message says where and what to do."""
