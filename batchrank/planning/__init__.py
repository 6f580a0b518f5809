"""A job's plan: which rows of the input get scored, grouped how, cut into which chunks.

The steps, in order: preflight.py (spec, input schema, model and qrels, before anything is read or written), the
row checks over every row (validate.py with row_checks.py, query_facts.py, duplicates.py, second_pass.py), the
rejected rows (reject_runs.py), a grouped copy of a scattered input (staging.py), then the plan itself or the
resume of an earlier one (job_plan.py, with fingerprint.py: what a checkpoint depends on).
"""
