"""The ``ssgan.*`` MLflow tag names, each defined once, with what it means.

The strings are part of the MLflow run contract: resume, searches and reports look runs up
by them and users query them, so a value here never changes. Optuna's study and trial
attributes are not MLflow tags and stay with the search code.
"""

from __future__ import annotations

# A training run (written when the run starts, unless said otherwise)
METHOD_TAG = "ssgan.method"  # the training method, method.name (before it: ssgan.mode)
MODEL_TAG = "ssgan.model"  # the network family, model.name
DATA_TAG = "ssgan.data"  # the data set, data.name
DATA_FINGERPRINT_TAG = "ssgan.data_fingerprint"  # the exact data the run saw
OVERRIDES_TAG = "ssgan.overrides"  # the command-line overrides that made the run (or sweep)
JOB_KEY_TAG = "ssgan.job_key"  # what resume=auto looks an unfinished run of this job up by
SWEEP_ID_TAG = "ssgan.sweep_id"  # a multirun job's sweep folder
SWEEP_JOB_TAG = "ssgan.sweep_job"  # a multirun job's number in its sweep
OUTPUT_DIR_TAG = "ssgan.hydra_output_dir"  # the Hydra output folder of the run's job
REPLICAS_TAG = "ssgan.replicas"  # replicas in sync under a distribution strategy
STEP_FLOPS_TAG = "ssgan.step_flops"  # FLOPs of one training step (the method's count)
WORKERS_TAG = "ssgan.workers"  # processes of a multi-worker job (set by its chief)
LEASE_TAG = "ssgan.lease"  # "host:pid:start expiry": the live job that owns the run
STOPPED_EARLY_TAG = "ssgan.stopped_early"  # why training stopped before its last epoch
ERROR_TAG = "ssgan.error"  # why the run last failed or stopped; gone once it FINISHES
CHECKPOINT_STEP_TAG = "ssgan.checkpoint_step"  # the step of the run's newest checkpoint
# Set when a run that died before its first checkpoint started again from step 0: the
# last step its first attempt logged (those steps keep that attempt's metrics).
RESTARTED_TAG = "ssgan.restarted_after_step"

# Provenance: the environment a run was made in
GIT_DIRTY_TAG = "ssgan.git_dirty"  # "true" when the checkout had uncommitted changes
TENSORFLOW_VERSION_TAG = "ssgan.tensorflow_version"  # TensorFlow that trained the run
MLFLOW_VERSION_TAG = "ssgan.mlflow_version"  # MLflow that recorded the run
SSGAN_VERSION_TAG = "ssgan.version"  # the installed ssgan's version (its package metadata)
HOST_CPUS_TAG = "ssgan.host_cpus"  # CPU count of the machine that trained the run
HOST_CPU_TAG = "ssgan.host_cpu"  # its CPU model and vector extension (ssgan.host.Cpu)

# Promotion: on the promoted run, and on its Model Registry version (several serving
# folders may share one registry, hence the folder on each version)
PROMOTED_VERSION_TAG = "ssgan.promoted_version"  # run: its number in the serving folder
PROMOTED_PATH_TAG = "ssgan.promoted_path"  # run: the promoted version's folder
SERVING_VERSION_TAG = "ssgan.serving_version"  # registry version: its serving folder number
SERVING_ROOT_TAG = "ssgan.serving_root"  # registry version: the serving folder it is in

# A sweep's parent run (grid sweeps and searches)
SWEEP_KIND_TAG = "ssgan.sweep_kind"  # "grid" or "search"
COMMAND_TAG = "ssgan.command"  # the command that started the sweep
SWEPT_PARAMS_TAG = "ssgan.swept_params"  # comma-separated dotted keys the sweep varies
RUNS_TAG = "ssgan.runs"  # grid: child runs found
RUNS_FINISHED_TAG = "ssgan.runs_finished"  # grid: child runs that FINISHED
BEST_RUN_ID_TAG = "ssgan.best_run_id"  # the child run with the best validation accuracy
BEST_PARAM_PREFIX = "ssgan.best."  # + a swept key: that key's value in the best run
OPTUNA_STUDY_TAG = "ssgan.optuna_study"  # search: the Optuna study's name (also on trials)
OPTUNA_STORAGE_TAG = "ssgan.optuna_storage"  # search: where the study is stored
N_TRIALS_TAG = "ssgan.n_trials"  # search: the trial budget, search.n_trials
BEST_TRIAL_TAG = "ssgan.best_trial"  # search: the best trial's number
TRIALS_COMPLETE_TAG = "ssgan.trials_complete"  # search: trials that completed
TRIALS_PRUNED_TAG = "ssgan.trials_pruned"  # search: trials the pruner stopped
TRIALS_FAILED_TAG = "ssgan.trials_failed"  # search: trials that failed (counted in the budget)

# A search's trial run
TRIAL_TAG = "ssgan.trial"  # the Optuna trial number the run trains
TRIAL_ROLE_TAG = "ssgan.trial_role"  # baseline, enqueued or sampled
PRUNED_TAG = "ssgan.pruned"  # "true" when the pruner stopped the trial
PRUNED_AT_EPOCH_TAG = "ssgan.pruned_at_epoch"  # the epoch the pruner stopped it after
