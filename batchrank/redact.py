"""Secrets out of every message: the values of the environment's credential variables, replaced before a line is
printed, logged or written into the output (a failure record, run.json, the engine log).

A variable is a credential by its name (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, HF_TOKEN, RAY_AUTH_TOKEN, any
*PASSWORD*, *API_KEY*...). Under `ray job submit` the job's runtime env holds such variables too (Ray documents
`env_vars` as the way to hand a job its credentials), in the driver's environment and, whole, inside Ray's job config
variable; both are read. Exceptions from libraries quote what they were given (Ray quoted a job's whole runtime env
in an error), so every message that quotes an exception goes through `redact`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_KEY|AUTH(?!OR)",
                         re.IGNORECASE)
# Shorter values ("1", "true", "token" as RAY_AUTH_MODE) are settings, not secrets, and would garble every line.
MIN_SECRET_CHARS = 8
MASK = "***"
RAY_JOB_CONFIG = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # ray._private.ray_constants: the submitted job's config


# A field of the spec or of vLLM's arguments that holds a credential (hf_token, api_key, aws_secret_access_key),
# by whole words: max_num_batched_tokens and tokenizer_mode are settings.
SECRET_FIELD = re.compile(r"(^|_)(token|secret|password|passwd|passphrase|api_?key|access_key|credentials?|"
                          r"private_key|auth)(_|$)", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def mask_secret_fields(tree: Any) -> Any:
    """`tree` (mappings and lists, as a spec or engine arguments) with the value of every credential field masked:
    what the output records (run.json, job.json's fingerprint) never holds a credential, whatever its source."""
    if isinstance(tree, Mapping):
        return {key: MASK if isinstance(key, str) and SECRET_FIELD.search(key) and value not in (None, "", False)
                else mask_secret_fields(value) for key, value in tree.items()}
    if isinstance(tree, list):
        return [mask_secret_fields(item) for item in tree]
    return tree


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The credential values of `environ` (default: this process's environment) and of the submitted Ray job's
    runtime env, longest first (so that a secret containing another is masked whole)."""
    environ = os.environ if environ is None else environ
    variables = dict(environ)
    try:
        job_config = json.loads(environ.get(RAY_JOB_CONFIG, "") or "{}")
        variables.update({f"job:{name}": str(value) for name, value in
                          ((job_config.get("runtime_env") or {}).get("env_vars") or {}).items()
                          if is_secret_name(name)})
    except (ValueError, AttributeError):
        pass
    values = {value for name, value in variables.items() if is_secret_name(name) and len(value) >= MIN_SECRET_CHARS}
    return sorted(values, key=len, reverse=True)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` with every credential value of the environment replaced by ***."""
    for value in secret_values(environ):
        if value in text:
            text = text.replace(value, MASK)
    return text


class RedactingFormatter(logging.Formatter):
    """A log formatter whose every line (the traceback too) has the environment's credential values masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
