"""Which engine runs a tool, decided by settings (docs/architecture.md, "Engines and providers").

A job records the engine it was started with and keeps it to the end, even if the settings change
meanwhile: `engines_in_use` decides at upload, `engine_named` finds that engine again later.
"""

from importlib import import_module

from django.conf import settings

from segmentation.engines.base import Draft, Engine, EngineError, PersonChoice, Result

__all__ = ["Draft", "Engine", "EngineError", "PersonChoice", "Result", "engine_named", "engines_in_use"]

CUTOUT, CROWD, IDPHOTO = "cutout", "crowd", "idphoto"

# (tool, engine name) → the class, imported only when a job needs it: the local engines load
# OpenCV models, the provider engines need none. ID photos wrap the cutout engine (engine_named).
ENGINES = {
    (CUTOUT, "local"): "segmentation.engines.local.LocalCutout",
    (CUTOUT, "removebg"): "segmentation.engines.removebg.RemoveBgCutout",
    (CROWD, "local"): "segmentation.engines.crowd.LocalCrowd",
    (CROWD, "dashscope"): "segmentation.engines.dashscope.DashScopeCrowd",
}


def _cutout_engine_name() -> str:
    if settings.BACKGROUND_ENGINE == "removebg" or (settings.BACKGROUND_ENGINE == "auto" and settings.REMOVEBG_API_KEY):
        return "removebg"
    return "local"


def _crowd_engine_name() -> str:
    if settings.CROWD_ENGINE == "dashscope" or (settings.CROWD_ENGINE == "auto" and settings.DASHSCOPE_API_KEY):
        return "dashscope"
    return "local"


def engines_in_use() -> dict[str, str]:
    """tool → engine name, as configured now. ID photos are cut out by the cutout engine."""
    return {CUTOUT: _cutout_engine_name(), CROWD: _crowd_engine_name(), IDPHOTO: _cutout_engine_name()}


def engine_named(mode: str, name: str, spec: str = "") -> Engine:
    """The engine a job was started with; an ID-photo job's also needs its spec."""
    if mode == IDPHOTO:
        from segmentation.engines.idphoto import IdPhoto

        if name == "removebg":  # an ID photo offers no choice of people: remove.bg need not find them
            from segmentation.engines.removebg import RemoveBgCutout

            return IdPhoto(RemoveBgCutout(offers_choice=False), spec, name)
        return IdPhoto(engine_named(CUTOUT, name), spec, name)
    try:
        path = ENGINES[mode, name]
    except KeyError:
        raise ValueError(f"no engine {name!r} for mode {mode!r}") from None
    module, _, cls = path.rpartition(".")
    return getattr(import_module(module), cls)()
