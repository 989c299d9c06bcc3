"""The whole method end to end: settings (:mod:`.config`), the run (:mod:`.run`), its report
(:mod:`.report`)."""

from ensemble.pipeline.config import PROFILES, PipelineConfig, list_profiles, make_config
from ensemble.pipeline.report import write_report
from ensemble.pipeline.run import RunResult, check_rerun, run_pipeline

__all__ = [
    "PROFILES",
    "PipelineConfig",
    "RunResult",
    "check_rerun",
    "list_profiles",
    "make_config",
    "run_pipeline",
    "write_report",
]
