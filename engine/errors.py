"""Domain errors: their message is safe to show a user as is."""


class UserError(Exception):
    """Bad input or a refused request; the message names the item and the reason."""


class AccessDenied(UserError):
    """The caller's role does not allow this action."""


class IndexMismatch(UserError):
    """The index on disk was built with other settings than the ones configured."""
