"""Errors raised on bad input; their messages are meant for the person who wrote the input."""


class InputError(ValueError):
    """Input data or configuration that clonetrack refuses, with a message saying where and what to do."""
