"""The one error of the addons: which addon failed and why."""
from core import errors


class AddonError(errors.DependencyFailed):
    """An addon could not be provisioned, removed, dumped or loaded (424: a service Berth depends
    on failed, not the request). The message names the addon and says why, e.g.
    "postgresql: the service did not accept connections within 120 s"."""

    def __init__(self, addon: str, why: str) -> None:
        super().__init__(f"{addon}: {why}")
        self.addon = addon
        self.why = why
