"""Asset keys and groups of the graph, in one place (checks and the merge refer to them too)."""

from dagster import AssetKey

RAW_SAMPLES = AssetKey("raw_samples")
RAW_QUARANTINE = AssetKey("raw_quarantine")
GENERATED = AssetKey("generated_responses")
LABELS = AssetKey("labels")
AUDITED = AssetKey("audited")
JUDGE_QUALITY = AssetKey("judge_quality")
REFUSAL_DATASET = AssetKey("refusal_dataset")
EVAL_PROMPTS = AssetKey("eval_prompts")
DATASET_DECONTAMINATION = AssetKey("dataset_decontamination")
REFUSAL_TRAIN = AssetKey("refusal_train")
REFUSAL_EVAL = AssetKey("refusal_eval")
HARMFUL_SHARD = AssetKey("harmful_shard")
RETAIN_SHARD = AssetKey("retain_shard")
STAGE2_SAMPLES = AssetKey("stage2_samples")
STAGE2_STATS = AssetKey("stage2_stats")
VALIDATION_REPORT = AssetKey("validation_report")
STAGE2_FILES = AssetKey("stage2_files")
TRAIN_SPLIT = AssetKey("train_split")
EVAL_SPLIT = AssetKey("eval_split")
QA_REPORT = AssetKey("qa_report")
REVIEW_SAMPLE = AssetKey("review_sample")
EXPORT = AssetKey("export")
PREFERENCE_PAIRS = AssetKey("preference_pairs")
PREFERENCE_TRAIN = AssetKey("preference_train")
PREFERENCE_EVAL = AssetKey("preference_eval")
PREFERENCE_FILES = AssetKey("preference_files")
TRAIT_ANSWERS = AssetKey("trait_answers")
STEERING_PAIRS = AssetKey("steering_pairs")
STEERING_FILES = AssetKey("steering_files")
STEERING_DECONTAMINATION = AssetKey("steering_decontamination")
STEERING_EFFICACY = AssetKey("steering_efficacy")
PREFERENCE_EFFICACY = AssetKey("preference_efficacy")
REFUSAL_EFFICACY = AssetKey("refusal_efficacy")
CIRCUIT_BREAKER_EFFICACY = AssetKey("circuit_breaker_efficacy")

# The per-source chain, in order: the merge reads the last one.
SOURCE_CHAIN = (RAW_SAMPLES, GENERATED, LABELS, AUDITED)
# A preference source's chain: the preference split checks it is built and not blocked.
PREFERENCE_CHAIN = (RAW_SAMPLES, PREFERENCE_PAIRS)
# A trait's chain: the steering files check it is built and not blocked.
STEERING_CHAIN = (TRAIT_ANSWERS, STEERING_PAIRS)
# each recipe's efficacy asset and the files asset it reads
EFFICACY = {
    "refusal": (REFUSAL_EFFICACY, EXPORT),
    "circuit_breaker": (CIRCUIT_BREAKER_EFFICACY, STAGE2_FILES),
    "preference": (PREFERENCE_EFFICACY, PREFERENCE_FILES),
    "steering": (STEERING_EFFICACY, STEERING_FILES),
}
OWNER = "team:safety-data"
