"""`make package` offline: what CloudFormation and Terraform would deploy.

Runs the real `make package` (chalice package, both stages, both formats) once for
the module, then reads the generated templates: functions, memory and timeouts,
the schedule, the layer on the consumer only, reserved concurrency, VPC, roles,
and that no secret is inlined anywhere.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_package_config import (
    ROOT,
    STAGES,
    function_env,
    function_setting,
    policy,
)

SECRET_VARIABLES = {"REDIS_URL", "DATABASE_URL", "SOUNDCHECK_API_KEY", "SOUNDCHECK_UPLOAD_SECRET"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|API_?KEY|CREDENTIAL", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@\"']*:[^\s/@\"']+@", re.IGNORECASE)
AWS_ACCESS_KEY = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")


def inlined_secrets(node: Any, where: str = "") -> list[str]:
    """Every place in a template that holds a secret value rather than a reference."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}/{key}"
            if isinstance(value, str) and (key in SECRET_VARIABLES or SECRET_NAME.search(key)):
                found.append(here)
            found.extend(inlined_secrets(value, here))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(inlined_secrets(value, f"{where}[{i}]"))
    elif isinstance(node, str) and (URL_WITH_PASSWORD.search(node) or AWS_ACCESS_KEY.search(node)):
        found.append(where)
    return found


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`make package` into a directory of this run's own (the venv is not rebuilt)."""
    target = tmp_path_factory.mktemp("package")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run(
        ["make", "-s", "-o", ".venv/.installed-stamp", "package", f"OUT={target}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"make package failed:\n{done.stdout}\n{done.stderr}"
    yield target


def sam(out: Path, stage: str) -> dict[str, Any]:
    return json.loads((out / stage / "cloudformation" / "sam.json").read_text())


def terraform(out: Path, stage: str) -> dict[str, Any]:
    """chalice.tf.json with chalice_override.tf.json applied, as Terraform merges them."""
    folder = out / stage / "terraform"
    tf = json.loads((folder / "chalice.tf.json").read_text())
    override = json.loads((folder / "chalice_override.tf.json").read_text())
    variables = folder / "variables.tf.json"  # an override file may not declare new ones
    if variables.exists():
        tf["variable"] = json.loads(variables.read_text())["variable"]
    for kind, resources in override["resource"].items():
        for name, attributes in resources.items():
            assert name in tf["resource"][kind], f"override of a missing {kind}.{name}"
            tf["resource"][kind][name].update(attributes)
    return tf


def sam_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """FunctionName -> properties of every Lambda function in a SAM template."""
    return {
        r["Properties"]["FunctionName"]: r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
    }


# prod's functions join the VPC whose ids the deployer passes (docs/deploy.md: Network)
VPC_FROM_PARAMETERS = {
    "SubnetIds": {"Ref": "SubnetIds"},
    "SecurityGroupIds": {"Ref": "SecurityGroupIds"},
}


def names(stage: str) -> tuple[str, str, str]:
    return f"soundcheck-{stage}", f"soundcheck-{stage}-consumer", f"soundcheck-{stage}-sweeper"


# --- the checker itself --------------------------------------------------------------


def test_the_secret_checker_finds_planted_secrets() -> None:
    planted = {
        "Resources": {
            "Fn": {
                "Properties": {
                    "Environment": {
                        "Variables": {
                            "REDIS_URL": "rediss://cache:6380",
                            "CACHE": "rediss://default:hunter2@cache:6380",
                            "SOUNDCHECK_API_KEY": "k",
                            "DB_PASSWORD": "p",
                            "QUEUE_NAME": "audio",
                        }
                    },
                    "Keys": ["AKIAABCDEFGHIJKLMNOP"],
                }
            }
        }
    }
    found = inlined_secrets(planted)
    assert sorted(found) == sorted(
        [
            "/Resources/Fn/Properties/Environment/Variables/REDIS_URL",
            "/Resources/Fn/Properties/Environment/Variables/CACHE",
            "/Resources/Fn/Properties/Environment/Variables/SOUNDCHECK_API_KEY",
            "/Resources/Fn/Properties/Environment/Variables/DB_PASSWORD",
            "/Resources/Fn/Properties/Keys[0]",
        ]
    )
    assert inlined_secrets({"url": "https://example.com:443/a@b", "ssm": "/soundcheck/prod"}) == []


# --- CloudFormation ------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_sam_functions_memory_and_timeouts(out: Path, stage: str) -> None:
    api, consumer, sweeper = names(stage)
    functions = sam_functions(sam(out, stage))
    assert set(functions) == {api, consumer, sweeper}
    sizes = {name: (f["MemorySize"], f["Timeout"]) for name, f in functions.items()}
    assert sizes == {api: (256, 10), consumer: (2048, 900), sweeper: (256, 60)}
    # one runtime for all, the one the analysis layer is built for (layers/build.py)
    assert len({f["Runtime"] for f in functions.values()}) == 1


@pytest.mark.parametrize("stage", STAGES)
def test_sam_schedule_and_api(out: Path, stage: str) -> None:
    api, consumer, sweeper = names(stage)
    functions = sam_functions(sam(out, stage))
    events = functions[sweeper]["Events"]
    assert [e["Properties"]["Schedule"] for e in events.values()] == ["rate(1 minute)"]
    assert "Events" not in functions[consumer] and "Events" not in functions[api]
    apis = [r for r in sam(out, stage)["Resources"].values() if r["Type"] == "AWS::Serverless::Api"]
    (rest,) = apis
    paths = rest["Properties"]["DefinitionBody"]["paths"]
    assert "/health" in paths
    assert rest["Properties"]["StageName"] == "v1"


@pytest.mark.parametrize("stage", STAGES)
def test_sam_layer_on_the_consumer_only(out: Path, stage: str) -> None:
    api, consumer, sweeper = names(stage)
    template = sam(out, stage)
    functions = sam_functions(template)
    assert functions[consumer]["Layers"] == function_setting(stage, "consumer", "layers")
    # the layer's compiled wheels are for one Python: the consumer's runtime
    python = functions[consumer]["Runtime"].replace("python", "py").replace(".", "")
    assert f"-{python}:" in functions[consumer]["Layers"][0]
    assert "Layers" not in functions[api] and "Layers" not in functions[sweeper]
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert "AWS::Serverless::LayerVersion" not in kinds  # no automatic layer


@pytest.mark.parametrize("stage", STAGES)
def test_sam_concurrency_vpc_and_environment(out: Path, stage: str) -> None:
    api, consumer, sweeper = names(stage)
    functions = sam_functions(sam(out, stage))
    reserved = function_setting(stage, "consumer", "reserved_concurrency")
    assert functions[consumer]["ReservedConcurrentExecutions"] == reserved
    assert "ReservedConcurrentExecutions" not in functions[api]
    subnets = function_setting(stage, "consumer", "subnet_ids")
    for name, chalice_name in ((api, "api_handler"), (consumer, "consumer"), (sweeper, "sweeper")):
        props = functions[name]
        if subnets:  # the template's parameters, not config.json's placeholders
            assert props["VpcConfig"] == VPC_FROM_PARAMETERS
        else:
            assert "VpcConfig" not in props
        variables = props["Environment"]["Variables"]
        assert variables == function_env(stage, chalice_name)
        assert variables["CONSUMER_FUNCTION_NAME"] == consumer


@pytest.mark.parametrize("stage", STAGES)
def test_sam_roles_carry_the_stage_policy(out: Path, stage: str) -> None:
    template = sam(out, stage)
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert roles
    for role in roles:
        (inline,) = role["Properties"]["Policies"]
        assert inline["PolicyDocument"] == policy(stage)
        assert "ManagedPolicyArns" not in role["Properties"]


@pytest.mark.parametrize("stage", STAGES)
def test_sam_log_groups_have_retention(out: Path, stage: str) -> None:
    template = sam(out, stage)
    groups = [r for r in template["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert len(groups) == 3
    assert {g["Properties"]["RetentionInDays"] for g in groups} == {14 if stage == "dev" else 90}


@pytest.mark.parametrize("stage", STAGES)
def test_no_secret_is_inlined(out: Path, stage: str) -> None:
    assert inlined_secrets(sam(out, stage)) == []
    assert inlined_secrets(terraform(out, stage)) == []
    # secrets come from SSM, not template inputs: the only inputs are the VPC's ids
    parameters = sam(out, stage).get("Parameters", {})
    in_vpc = function_setting(stage, "consumer", "subnet_ids") is not None
    assert set(parameters) == (set(VPC_FROM_PARAMETERS) if in_vpc else set())
    assert all(p["Type"].startswith("List<AWS::EC2::") for p in parameters.values())


@pytest.mark.parametrize("stage", STAGES)
def test_cfn_lint_passes(out: Path, stage: str) -> None:
    """AWS's own linter (cfn-lint) on the template as deployed: no error, no warning.

    Before the VPC ids became template parameters, prod failed it (E1150/E3031 on
    `subnet-CHANGE-ME` / `sg-CHANGE-ME`); test_cfn_lint_refuses_placeholders keeps the
    linter honest about that.
    """
    assert cfn_lint(out / stage / "cloudformation" / "sam.json") == []


def test_cfn_lint_refuses_placeholders(out: Path, tmp_path: Path) -> None:
    """The check above can fail: config.json's placeholder ids written in are refused."""
    template = sam(out, "prod")
    del template["Parameters"]
    for resource in template["Resources"].values():
        if "VpcConfig" in resource.get("Properties", {}):
            resource["Properties"]["VpcConfig"] = {
                "SubnetIds": function_setting("prod", "consumer", "subnet_ids"),
                "SecurityGroupIds": function_setting("prod", "consumer", "security_group_ids"),
            }
    planted = tmp_path / "sam.json"
    planted.write_text(json.dumps(template))
    found = cfn_lint(planted)
    assert found and all("CHANGE-ME" in m for m in found), found
    assert any("subnet-CHANGE-ME" in m for m in found) and any("sg-CHANGE-ME" in m for m in found)


def cfn_lint(template: Path) -> list[str]:
    """cfn-lint's findings on one template, one line each (`RULE message`)."""
    from cfnlint.api import ManualArgs, lint_file

    found = lint_file(template, config=ManualArgs(regions=["us-east-1"]))
    return [f"{m.rule.id} {m.message}" for m in found]


# --- Terraform -----------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_terraform_matches_the_config(out: Path, stage: str) -> None:
    api, consumer, sweeper = names(stage)
    tf = terraform(out, stage)["resource"]
    functions = {f["function_name"]: f for f in tf["aws_lambda_function"].values()}
    assert set(functions) == {api, consumer, sweeper}
    sizes = {n: (f["memory_size"], f["timeout"]) for n, f in functions.items()}
    assert sizes == {api: (256, 10), consumer: (2048, 900), sweeper: (256, 60)}
    assert functions[consumer]["layers"] == function_setting(stage, "consumer", "layers")
    assert not functions[api].get("layers") and not functions[sweeper].get("layers")
    reserved = function_setting(stage, "consumer", "reserved_concurrency")
    assert functions[consumer]["reserved_concurrent_executions"] == reserved
    (rule,) = tf["aws_cloudwatch_event_rule"].values()
    assert rule["schedule_expression"] == "rate(1 minute)"
    assert rule["name"] == sweeper  # two stages in one account must not share a rule
    (target,) = tf["aws_cloudwatch_event_target"].values()
    assert target["arn"] == "${aws_lambda_function.sweeper.arn}"
    for f in functions.values():
        assert f["environment"]["variables"]["CONSUMER_FUNCTION_NAME"] == consumer
    if function_setting(stage, "consumer", "subnet_ids"):  # variables, not placeholders
        variables = set(terraform(out, stage).get("variable", {}))
        assert variables == {"subnet_ids", "security_group_ids"}
        for f in functions.values():
            assert f["vpc_config"] == {
                "subnet_ids": "${var.subnet_ids}",
                "security_group_ids": "${var.security_group_ids}",
            }
    else:
        assert not any(f.get("vpc_config") for f in functions.values())


# --- the deployment package ----------------------------------------------------------


def test_deployment_package_is_small_and_holds_no_analysis_stack(out: Path) -> None:
    with zipfile.ZipFile(out / "prod" / "cloudformation" / "deployment.zip") as z:
        entries = z.namelist()
        unzipped = sum(i.file_size for i in z.infolist())
    tops = {e.split("/", 1)[0] for e in entries}
    assert {"app.py", "chalicelib", "redis", "pg8000"} <= tops
    assert not tops & {"numpy", "scipy", "soundfile", "pyloudnorm", "boto3", "botocore"}
    assert not any(Path(e).name in (".env", ".upload-secret") for e in entries)
    assert unzipped < 50 * 1024 * 1024  # leaves the consumer ~200 MB for the layer


# --- the package alone runs the API ----------------------------------------------------

HANDLER_PROBE = """
import json, sys
import app

def event(path):
    return {
        "resource": path, "path": path, "httpMethod": "GET",
        "headers": {"Accept": "application/json"},
        "multiValueHeaders": {"Accept": ["application/json"]},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None, "body": None,
        "isBase64Encoded": False,
        "requestContext": {"resourcePath": path, "httpMethod": "GET", "path": "/api" + path,
                           "stage": "api", "requestId": "probe", "identity": {}},
    }

answers = {p: app.app(event(p), None) for p in sys.argv[1:]}
print(json.dumps({"answers": answers, "modules": sorted(sys.modules)}))
"""

NOT_AT_IMPORT = ("numpy", "scipy", "soundfile", "pyloudnorm", "boto3", "botocore")


@pytest.fixture(scope="module")
def unzipped(out: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("task")  # like /var/task
    with zipfile.ZipFile(out / "prod" / "cloudformation" / "deployment.zip") as z:
        z.extractall(target)
    return target


def run_isolated(cwd: Path, env: dict[str, str], *paths: str) -> dict[str, Any]:
    """The probe under -S -B: only the deployment package and the standard library."""
    done = subprocess.run(
        [sys.executable, "-S", "-B", "-c", HANDLER_PROBE, *paths],
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_app_loads_no_analysis_stack() -> None:
    """The contract that keeps the API's cold start small, in the working tree."""
    code = "import sys, app; print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = {m.split(".")[0] for m in done.stdout.split()}
    assert "chalice" in loaded and "chalicelib" in loaded
    assert not loaded & set(NOT_AT_IMPORT), sorted(loaded & set(NOT_AT_IMPORT))


def test_the_package_alone_serves_health(unzipped: Path) -> None:
    seen = run_isolated(unzipped, {}, "/health")
    answer = seen["answers"]["/health"]
    assert answer["statusCode"] == 200 and json.loads(answer["body"]) == {"status": "ok"}
    loaded = {m.split(".")[0] for m in seen["modules"]}
    assert not loaded & set(NOT_AT_IMPORT)


def test_the_package_alone_reaches_redis_and_postgres(
    unzipped: Path, redis_url: str, database_url: str, db_schema: str
) -> None:
    """requirements.txt carries everything the API needs: redis and pg8000 from the zip."""
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "SOUNDCHECK_DB_SCHEMA": db_schema,
        "QUEUE_NAME": "package-probe",
        "SOUNDCHECK_STORAGE_DIR": str(unzipped / "objects"),
    }
    seen = run_isolated(unzipped, env, "/health/ready")
    answer = seen["answers"]["/health/ready"]
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 200, body
    # `ok` needs both Redis and Postgres; the details (queue name...) are for admin keys
    assert body == {"status": "ok"}
    loaded = {m.split(".")[0] for m in seen["modules"]}
    assert {"redis", "pg8000"} <= loaded
    assert all(
        not m.startswith(("numpy", "scipy", "soundfile", "pyloudnorm")) for m in seen["modules"]
    )
