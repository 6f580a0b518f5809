"""A job's plan: which rows of the input get scored, grouped how, cut into which chunks.

The steps, in order: preflight.py (spec, input schema, model and qrels, before anything is read or written);
validate.py, every row checked: the row pass (row_pass.py: row_checks.py, per-query facts in query_facts.py, pair
hashes for duplicates.py), then, only if needed, a second pass (second_pass.py: too_long.py and the duplicates
confirmed on their ids); every check emits the rows it rejects into one stream of decisions (reject_stream.py), and
the query sizes are the input less that stream; a grouped copy of a scattered input (staging.py); then the plan
itself, or the resume of an earlier one (job_plan.py, with fingerprint.py: what a checkpoint depends on).

The memory every step keeps to is set by two settings (memory.py: run.plan_read_mib, run.staging_sort_mib); work
that must not be held in memory goes to local scratch disk (spill.py, written by background.py's thread).
docs/architecture.md says in one paragraph which rows get scored, in what order.
"""
