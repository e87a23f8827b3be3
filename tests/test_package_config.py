""".chalice/config.json and the IAM policies: every setting set, values valid, least privilege.

Read offline from the files themselves (test_package.py checks what `chalice package`
makes of them). The policy checks evaluate statements the way IAM matches them:
actions and resource ARNs with `*` and `?` wildcards, Allow only.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from chalicelib import consumer, settings

ROOT = Path(__file__).resolve().parent.parent
CHALICE = ROOT / ".chalice"
STAGES = ("dev", "prod")
FUNCTIONS = ("api_handler", "consumer", "sweeper")

# Settings that have no place on AWS: the local stack's alone.
LOCAL_ONLY = {
    "SOUNDCHECK_STORAGE_DIR",  # S3 instead
    "SOUNDCHECK_SWEEP_SECONDS",  # the schedule instead
    "SOUNDCHECK_API_KEY",  # keys live in Postgres
    "SOUNDCHECK_PUBLIC_URL",  # status URLs stay relative to API Gateway's URL
    "SOUNDCHECK_UPLOAD_SECRET",  # signs the local store's upload URLs; S3 presigns
    "SOUNDCHECK_WEBHOOK_ALLOW_HTTP",  # callbacks over https only on AWS
    "SOUNDCHECK_WEBHOOK_ALLOW_LOOPBACK",  # tests only (settings refuse it on Lambda)
}
# Settings whose values carry passwords: stored in SSM under SOUNDCHECK_SSM_PATH.
SECRETS = {"REDIS_URL", "DATABASE_URL"}


def config() -> dict[str, Any]:
    return json.loads((CHALICE / "config.json").read_text())


def function_env(stage: str, function: str) -> dict[str, str]:
    """What Chalice gives a function: top level, then stage, then stage.lambda_functions."""
    cfg = config()
    st = cfg["stages"][stage]
    return {
        **cfg.get("environment_variables", {}),
        **st.get("environment_variables", {}),
        **st.get("lambda_functions", {}).get(function, {}).get("environment_variables", {}),
    }


def function_setting(stage: str, function: str, name: str) -> Any:
    """Chalice's lookup order for a per-function setting."""
    cfg = config()
    st = cfg["stages"][stage]
    for scope in (
        st.get("lambda_functions", {}).get(function, {}),
        st,
        cfg.get("lambda_functions", {}).get(function, {}),
        cfg,
    ):
        if scope.get(name) is not None:
            return scope[name]
    return None


def policy(stage: str) -> dict[str, Any]:
    name = function_setting(stage, "consumer", "iam_policy_file")
    return json.loads((CHALICE / name).read_text())


def allowed(
    doc: dict[str, Any], action: str, resource: str, context: dict[str, str] | None = None
) -> bool:
    """Whether an Allow statement grants `action` on `resource` (no Deny is used)."""
    for st in doc["Statement"]:
        assert st["Effect"] == "Allow"
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if not any(fnmatchcase(action.lower(), a.lower()) for a in actions):
            continue
        if not any(fnmatchcase(resource, r) for r in resources):
            continue
        like = st.get("Condition", {}).get("StringLike", {})
        if all(
            any(fnmatchcase((context or {}).get(key, ""), v) for v in values)
            for key, values in like.items()
        ):
            return True
    return False


def arn(service: str, rest: str) -> str:
    return f"arn:aws:{service}:eu-west-1:123456789012:{rest}"


# --- config.json ---------------------------------------------------------------------


def test_stages_and_policy_settings() -> None:
    cfg = config()
    assert set(cfg["stages"]) == set(STAGES)
    assert cfg["app_name"] == "soundcheck"
    for stage in STAGES:
        for fn in FUNCTIONS:
            assert function_setting(stage, fn, "autogen_policy") is False
            assert function_setting(stage, fn, "iam_policy_file") == f"policy-{stage}.json"
    # per-function env vars at the top level are silently dropped by Chalice
    for fn_config in cfg.get("lambda_functions", {}).values():
        assert "environment_variables" not in fn_config


@pytest.mark.parametrize("stage", STAGES)
def test_memory_timeout_concurrency(stage: str) -> None:
    assert function_setting(stage, "api_handler", "lambda_memory_size") == 256
    assert function_setting(stage, "api_handler", "lambda_timeout") == 10
    assert function_setting(stage, "consumer", "lambda_memory_size") == 2048
    assert function_setting(stage, "consumer", "lambda_timeout") == 900
    assert function_setting(stage, "sweeper", "lambda_memory_size") == 256
    reserved = function_setting(stage, "consumer", "reserved_concurrency")
    assert isinstance(reserved, int) and reserved >= 1
    # the queue's in-flight cap and the Lambda's concurrency describe one limit
    assert int(function_env(stage, "consumer")["SOUNDCHECK_MAX_IN_FLIGHT"]) <= reserved
    for fn in ("api_handler", "sweeper"):
        assert function_setting(stage, fn, "reserved_concurrency") is None


@pytest.mark.parametrize("stage", STAGES)
def test_the_analysis_layer_is_on_the_consumer_only(stage: str) -> None:
    (layer,) = function_setting(stage, "consumer", "layers")
    assert re.fullmatch(
        r"arn:aws:lambda:[a-z0-9-]+:\d{12}:layer:soundcheck-analysis-[\w-]+:\d+", layer
    )
    assert function_setting(stage, "api_handler", "layers") is None
    assert function_setting(stage, "sweeper", "layers") is None
    assert not function_setting(stage, "consumer", "automatic_layer")


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_setting_is_set_or_accounted_for(stage: str, function: str) -> None:
    env = function_env(stage, function)
    names = {settings.env_name(f.name) for f in fields(settings.Settings)}
    missing = names - set(env) - LOCAL_ONLY - SECRETS
    assert not missing, (
        f"{sorted(missing)} not in .chalice/config.json ({stage}/{function}): give each a "
        "value there, or list it in LOCAL_ONLY / SECRETS in this test with a reason"
    )
    assert not (set(env) & (LOCAL_ONLY | SECRETS))
    assert set(env) <= names, f"unknown variables: {sorted(set(env) - names)}"


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_config_values_parse_as_settings(stage: str, function: str) -> None:
    env = function_env(stage, function)
    path = env.pop("SOUNDCHECK_SSM_PATH")
    assert path == f"/soundcheck/{stage}"
    loaded = settings.load(env)  # raises SettingsError naming a bad value
    assert loaded.consumer_function_name == f"soundcheck-{stage}-consumer"
    assert loaded.metrics_namespace == f"soundcheck/{stage}"
    assert loaded.storage_bucket
    # a consumer must be able to claim a job within its timeout
    timeout = function_setting(stage, "consumer", "lambda_timeout")
    assert loaded.lease_seconds < timeout
    # a job is stopped at its ceiling (and counted) before Lambda would freeze it
    assert loaded.max_job_seconds + consumer.LAMBDA_MARGIN_MS / 1000 <= timeout


def test_vpc_placeholders_in_prod_only() -> None:
    assert function_setting("dev", "consumer", "subnet_ids") is None
    for fn in FUNCTIONS:
        subnets = function_setting("prod", fn, "subnet_ids")
        groups = function_setting("prod", fn, "security_group_ids")
        assert len(subnets) >= 2 and all(s.startswith("subnet-") for s in subnets)
        assert groups and all(g.startswith("sg-") for g in groups)


@pytest.mark.parametrize("stage", STAGES)
def test_merge_templates_name_functions_like_chalice_deploy(stage: str) -> None:
    merge = json.loads((CHALICE / f"merge-{stage}.json").read_text())["Resources"]
    names = {
        k: v["Properties"]["FunctionName"]
        for k, v in merge.items()
        if "FunctionName" in v.get("Properties", {})
    }
    assert names == {
        "APIHandler": f"soundcheck-{stage}",
        "Consumer": f"soundcheck-{stage}-consumer",
        "Sweeper": f"soundcheck-{stage}-sweeper",
    }
    assert names["Consumer"] == function_env(stage, "api_handler")["CONSUMER_FUNCTION_NAME"]


# --- IAM -----------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_policy_grants_what_the_functions_do(stage: str) -> None:
    doc = policy(stage)
    env = function_env(stage, "api_handler")
    bucket, prefix = env["STORAGE_BUCKET"], env["SOUNDCHECK_STORAGE_PREFIX"]
    key = f"{prefix}/0123abcd/5f0e/mix.wav"
    assert allowed(doc, "s3:PutObject", f"arn:aws:s3:::{bucket}/{key}")  # presigned PUT
    assert allowed(doc, "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}")  # HEAD and download
    # without ListBucket a missing key answers 403 instead of 404
    assert allowed(doc, "s3:ListBucket", f"arn:aws:s3:::{bucket}", {"s3:prefix": key})
    consumer = env["CONSUMER_FUNCTION_NAME"]
    assert allowed(doc, "lambda:InvokeFunction", arn("lambda", f"function:{consumer}"))
    ssm_path = env["SOUNDCHECK_SSM_PATH"]
    assert allowed(doc, "ssm:GetParametersByPath", arn("ssm", f"parameter{ssm_path}"))
    for fn in (
        f"soundcheck-{stage}",
        f"soundcheck-{stage}-consumer",
        f"soundcheck-{stage}-sweeper",
    ):
        group = arn("logs", f"log-group:/aws/lambda/{fn}")
        assert allowed(doc, "logs:CreateLogGroup", group)
        assert allowed(doc, "logs:CreateLogStream", f"{group}:log-stream:2026/01/01/[$LATEST]ab")
        assert allowed(doc, "logs:PutLogEvents", f"{group}:log-stream:2026/01/01/[$LATEST]ab")


@pytest.mark.parametrize("stage", STAGES)
def test_policy_grants_nothing_more(stage: str) -> None:
    doc = policy(stage)
    env = function_env(stage, "api_handler")
    bucket = env["STORAGE_BUCKET"]
    other = "prod" if stage == "dev" else "dev"
    denied = [
        ("s3:GetObject", f"arn:aws:s3:::{bucket}/other/file.wav"),
        ("s3:PutObject", f"arn:aws:s3:::{bucket}/results.json"),
        ("s3:DeleteObject", f"arn:aws:s3:::{bucket}/uploads/a/b/c.wav"),
        ("s3:GetObject", "arn:aws:s3:::someone-elses-bucket/uploads/a.wav"),
        ("s3:ListBucket", f"arn:aws:s3:::{bucket}"),  # no prefix: listing everything
        ("lambda:InvokeFunction", arn("lambda", f"function:soundcheck-{stage}")),
        ("lambda:InvokeFunction", arn("lambda", f"function:soundcheck-{other}-consumer")),
        ("lambda:UpdateFunctionCode", arn("lambda", f"function:soundcheck-{stage}-consumer")),
        ("ssm:GetParametersByPath", arn("ssm", f"parameter/soundcheck/{other}")),
        ("ssm:PutParameter", arn("ssm", f"parameter/soundcheck/{stage}/REDIS_URL")),
        ("logs:PutLogEvents", arn("logs", "log-group:/aws/lambda/another-app:log-stream:x")),
        ("iam:PassRole", "arn:aws:iam::123456789012:role/admin"),
    ]
    for action, resource in denied:
        context = {"s3:prefix": ""} if action == "s3:ListBucket" else None
        assert not allowed(doc, action, resource, context), f"{stage} allows {action} on {resource}"
    for st in doc["Statement"]:
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        assert all("*" not in a for a in actions), f"wildcard action in {st.get('Sid')}"


def test_vpc_network_interfaces_only_where_there_is_a_vpc() -> None:
    for stage in STAGES:
        in_vpc = function_setting(stage, "consumer", "subnet_ids") is not None
        grants = allowed(policy(stage), "ec2:CreateNetworkInterface", "*")
        assert grants == in_vpc, f"{stage}: ENI permissions must match the VPC setting"
        for st in policy(stage)["Statement"]:
            if st["Resource"] == "*":  # only the ENI actions, which IAM cannot scope
                assert all(a.startswith("ec2:") for a in st["Action"])
