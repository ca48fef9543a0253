"""Errors meant for people: each names the thing that is wrong and the fix."""


class IrRobotError(Exception):
    """Base class of every error ir_robot raises on purpose."""


class ConfigError(IrRobotError, ValueError):
    """A config or phantom file is missing a field, has an unknown one, or a bad value."""


class PerceptionError(IrRobotError, ValueError):
    """An image or a weights file cannot be used (wrong shape, dtype, corrupt...)."""


class RigError(IrRobotError):
    """A rig backend failed (port missing, device not answering, ...). The rig is stopped."""


class ProtocolError(RigError):
    """A device sent something the protocol does not allow."""


class SafetyTrip(RigError):
    """A safety check tripped; the rig has been stopped. ``reason`` says which check."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"safety trip [{reason}]" + (f": {detail}" if detail else ""))
