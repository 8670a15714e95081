"""The judge a run chooses in the launchpad (``JudgeRunConfig``), built from the build's settings
and LLM resource (``batch_judge``): every asset that labels answers uses it."""

from dagster import Config
from pydantic import Field
from safetygraph.location.resources.llm import LLMResource
from safetygraph.location.resources.settings import BuildConfig

from safetygraph.generation import RequestCache
from safetygraph.labeling.registry import BatchJudge, JudgeChoice


class JudgeRunConfig(Config):
    """Chosen in the launchpad: which judge labels the rows."""

    judge: str = Field(
        default="",
        description="combined (offline default: heuristic signals decided by the trained classifiers), "
        "heuristic, classifier, llm, two_pass, or a guard model: wildguard, llamaguard; empty: "
        "the build's (safetygraph build --judge), else combined",
    )
    judge_role: str = Field(
        default="judge", description="The profile's generation config the LLM judge uses"
    )
    second_judge_role: str = Field(
        default="judge_second", description="two_pass: the second judge's config"
    )
    second_pass_below: float = Field(
        default=0.7, description="two_pass: confidence under which a row goes to the second judge"
    )


def batch_judge(config: JudgeRunConfig, settings: BuildConfig, llm: LLMResource) -> BatchJudge:
    """The judge ``config`` chooses, with the profile's generation configs and the LLM backends."""
    return BatchJudge(
        JudgeChoice(
            config.judge or settings.judge(),
            config.judge_role,
            config.second_judge_role,
            config.second_pass_below,
        ),
        settings.constitution(),
        config_for=lambda role: settings.generation_configs([role])[0],
        backend_for=llm.backend,
        cache=lambda: RequestCache(settings.storage()),
    )
