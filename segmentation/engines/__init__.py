"""Which engine runs a tool, decided by settings (see DESIGN.md, "Engines")."""

from django.conf import settings

from segmentation.engines.base import Draft, Engine, EngineError, Result

__all__ = ["Draft", "Engine", "EngineError", "Result", "engine_for", "engine_named", "engines_in_use"]

CUTOUT, CROWD = "cutout", "crowd"
MODES = (CUTOUT, CROWD)


def _cutout_engine_name() -> str:
    if settings.BACKGROUND_ENGINE == "removebg" or (settings.BACKGROUND_ENGINE == "auto" and settings.REMOVEBG_API_KEY):
        return "removebg"
    return "local"


def _crowd_engine_name() -> str:
    if settings.CROWD_ENGINE == "dashscope" or (settings.CROWD_ENGINE == "auto" and settings.DASHSCOPE_API_KEY):
        return "dashscope"
    return "local"


def engines_in_use() -> dict[str, str]:
    """mode → engine name, as configured now."""
    return {CUTOUT: _cutout_engine_name(), CROWD: _crowd_engine_name()}


def engine_named(mode: str, name: str) -> Engine:
    """The engine a job was started with (a job keeps its engine even if settings change)."""
    if mode == CUTOUT and name == "removebg":
        from segmentation.engines.removebg import RemoveBgCutout

        return RemoveBgCutout()
    if mode == CUTOUT and name == "local":
        from segmentation.engines.local import LocalCutout

        return LocalCutout()
    if mode == CROWD and name == "dashscope":
        from segmentation.engines.dashscope import DashScopeCrowd

        return DashScopeCrowd()
    if mode == CROWD and name == "local":
        from segmentation.engines.local import LocalCrowd

        return LocalCrowd()
    raise ValueError(f"no engine {name!r} for mode {mode!r}")


def engine_for(mode: str) -> Engine:
    return engine_named(mode, engines_in_use()[mode])
