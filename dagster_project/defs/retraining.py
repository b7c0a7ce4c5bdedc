"""Retraining: staleness drift requests the training pipeline, once per drift episode.

`drift_retrain_sensor` reads the staleness verdicts (genline.drift_verdicts) and groups them into
episodes (genline.retrain.drift_episodes: consecutive drifting windows of one served version).
For the active episode of the version that serves now it requests `training_job` with

- `run_key` = the episode's key (model, version, FIRST drifting window): later drifting windows
  of the same episode, and a tick re-evaluated after a crash, produce the same key, and Dagster
  never launches a key twice (the daemon checks the runs' tags, not the cursor);
- a cooldown after the last retrain this sensor requested (the `genline/requested_at` tag, by
  genline.clock), so a flapping monitor cannot start run after run;
- a data-sufficiency check: a training_dataset version that is not the data the serving model
  was trained on; otherwise a `retrain.no_new_data` alert (one incident per episode) and no run;
- run config: warm start from the serving version (`init_from="serving"`), the serving version
  as champion, publish when the challenger wins, the `finetune` preset; the reason (episode,
  drift window, report, scores) as tags and as the pipeline's `trigger` (into lineage);
- a retry policy: Dagster never re-launches a key that launched a run which then failed, so the
  sensor itself requests `<key>#retry<n>` after a failed attempt, up to `max_retries`.
"""

import json
import os
from typing import Any

import dagster as dg

from genline import clock, contract
from genline.drift_verdicts import read_verdicts
from genline.retrain import Episode, drift_episodes, new_data_since
from genline.serving.registry import Registry
from genline.versioning import list_versions

from .resources import AlertSinkResource, DvcRemoteResource, GenlineStateResource
from .training import training_job

EPISODE_TAG = "genline/retrain_episode"
ATTEMPT_TAG = "genline/retrain_attempt"
REQUESTED_AT_TAG = "genline/requested_at"
TRIGGER_TAG = "genline/trigger"
FAILED = (dg.DagsterRunStatus.FAILURE,)


class RetrainPolicyResource(dg.ConfigurableResource):
    """How drift turns into retraining: where the served model lives, cooldown, retries, preset."""

    model_repository: str = "triton_repo"  # the Triton repository the serving version lives in
    model: str = contract.MODEL_NAME
    cooldown_s: int = 1800  # no new retrain within this long after the last one requested
    max_retries: int = 2  # attempts after the first one fails
    preset: str = "finetune"
    triton_url: str = ""  # empty: the pipeline's default

    def repository(self) -> str:
        from pathlib import Path

        return str(Path(self.model_repository).expanduser().resolve())


# settings a deployment (or the demo) sets in the environment; bound only when set, the
# values are read by Dagster when a tick or run uses the resource
POLICY_ENV = {
    "model_repository": ("GENLINE_MODEL_REPOSITORY", dg.EnvVar),
    "cooldown_s": ("GENLINE_RETRAIN_COOLDOWN_S", dg.EnvVar.int),
    "max_retries": ("GENLINE_RETRAIN_MAX_RETRIES", dg.EnvVar.int),
    "triton_url": ("GENLINE_TRITON_URL", dg.EnvVar),
}


@dg.definitions
def retrain_resources() -> dg.Definitions:
    """The retrain policy resource: defaults, or the GENLINE_* variables of POLICY_ENV.

    The sensor is listed here too: a module with a `@dg.definitions` function contributes only
    what that function returns to `load_from_defs_folder`, not its module-level objects."""
    bound = {k: make(name) for k, (name, make) in POLICY_ENV.items() if os.environ.get(name)}
    return dg.Definitions(resources={"retrain_policy": RetrainPolicyResource(**bound)},
                          sensors=[drift_retrain_sensor])


def _runs_of(instance: dg.DagsterInstance, episode: Episode) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={EPISODE_TAG: episode.key})))


def _last_requested_at(instance: dg.DagsterInstance) -> float | None:
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=training_job.name, tags={TRIGGER_TAG: "drift"}), limit=20
    )
    times = [float(r.dagster_run.tags.get(REQUESTED_AT_TAG, "nan")) for r in records]
    times = [t for t in times if t == t]  # drop NaN (a run without the tag)
    return max(times) if times else None


def retrain_request(
    episode: Episode, policy: RetrainPolicyResource, attempt: int, now: float
) -> dg.RunRequest:
    """The training_job run for one attempt at one episode (the run key names both)."""
    trigger = episode.trigger()
    config: dict[str, Any] = {
        "init_from": "serving",
        "champion_version": "serving",
        "publish": True,
        "preset": policy.preset,
        "model_repository": policy.repository(),
        "trigger": json.dumps(trigger, sort_keys=True),
    }
    if policy.triton_url:
        config["triton_url"] = policy.triton_url
    scores = json.dumps(trigger["scores"], sort_keys=True)
    return dg.RunRequest(
        run_key=episode.key if attempt == 0 else f"{episode.key}#retry{attempt}",
        run_config={"ops": {"generator_model": {"config": config}}},
        tags={
            EPISODE_TAG: episode.key,
            ATTEMPT_TAG: str(attempt),
            REQUESTED_AT_TAG: f"{now:.3f}",
            TRIGGER_TAG: "drift",
            "genline/drift_window": trigger["window_key"],
            "genline/drift_first_window": episode.first_window,
            "genline/drift_windows": str(episode.windows),
            "genline/drift_report": trigger["report"] or "",
            "genline/drift_scores": scores if len(scores) <= 2000 else scores[:1997] + "...",
            "genline/served_version": str(episode.version),
        },
    )


@dg.sensor(job=training_job, minimum_interval_seconds=60)
def drift_retrain_sensor(
    context: dg.SensorEvaluationContext,
    retrain_policy: RetrainPolicyResource,
    genline_state: GenlineStateResource,
    dvc_remote: DvcRemoteResource,
    alert_sink: AlertSinkResource,
):
    """Stale serving model -> one warm-started champion/challenger retrain per drift episode."""
    policy = retrain_policy
    verdicts = read_verdicts(monitor="staleness", model=policy.model)
    newest = max((v.computed_at for v in verdicts), default=None)
    if newest is not None:  # the cursor: what the sensor has read (the run key is the guarantee)
        context.update_cursor(json.dumps({"verdicts_until": newest}))
    serving = Registry().serving(policy.repository(), policy.model)
    episode = next(
        (e for e in drift_episodes(verdicts) if e.active and e.version == serving), None
    )
    if episode is None:
        return dg.SkipReason(
            f"no active staleness drift episode for {policy.model} version {serving} "
            f"({len(verdicts)} staleness verdicts)"
        )
    now = clock.now().timestamp()
    runs = _runs_of(context.instance, episode)
    if runs:
        if any(r.status not in FAILED for r in runs):
            return dg.SkipReason(f"episode {episode.key}: its retrain run was requested already")
        if len(runs) > policy.max_retries:
            return dg.SkipReason(
                f"episode {episode.key}: {len(runs)} retrain attempts failed "
                f"(max_retries {policy.max_retries}); see the failed runs' alerts"
            )
        context.log.info(f"episode {episode.key}: attempt {len(runs)} failed, retrying")
        return [retrain_request(episode, policy, len(runs), now)]
    last = _last_requested_at(context.instance)
    if last is not None and now - last < policy.cooldown_s:
        return dg.SkipReason(
            f"episode {episode.key}: cooldown, the last retrain was requested "
            f"{now - last:.0f} s ago (cooldown_s {policy.cooldown_s:.0f})"
        )
    served = Registry().version_info(policy.repository(), policy.model, episode.version)
    fingerprint = served.get("lineage", {}).get("dataset_fingerprint")
    versions = list_versions(dvc_remote.config(genline_state.root()))
    enough, why = new_data_since(fingerprint, versions)
    if not enough:
        trigger = episode.trigger()
        alert_sink.send(
            "retrain.sensor",
            f"{policy.model} version {episode.version} is stale (drift since window "
            f"{episode.first_window}) and retraining was needed, but there is no new data: {why}",
            severity="warning",
            kind="retrain.no_new_data",
            subject=episode.key,  # one incident per episode
            model=policy.model,
            version=str(episode.version),
            details={"episode": episode.key, "report": trigger["report"],
                     "scores": trigger["scores"], "windows": episode.windows},
        )
        return dg.SkipReason(f"episode {episode.key}: no new data ({why}); alert raised")
    context.log.info(f"episode {episode.key}: retraining ({why})")
    return [retrain_request(episode, policy, 0, now)]
