"""The cloudron.io account routes (register, subscription, user token): Berth has no store account.

Berth's catalogs are plain JSON documents an admin configures; there is no store to register with,
no subscription and no store login. The routes answer that honestly with Cloudron's own code for
"not registered" (412, Precondition Failed) and a message, instead of pretending to succeed.
"""
from core.errors import PreconditionFailed

MESSAGE = ("This server has no app store account: Berth installs apps from the catalogs configured in "
           "/settings/appstore_config (or BERTH_APP_CATALOG), so there is no cloudron.io registration, "
           "subscription or store login")


def no_account() -> PreconditionFailed:
    """The error every account route raises."""
    return PreconditionFailed(MESSAGE)
