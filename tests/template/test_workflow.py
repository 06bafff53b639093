"""The pipeline cannot be hijacked (issue 14): what .github/workflows/*.yml, the Makefile's deploy
targets and requirements-deploy.txt must keep true.

- every action is pinned by a full commit SHA, with its version in a trailing comment;
- no `${{ }}` expression is pasted into a script: values reach the shell through `env:`;
- a job that can assume an AWS role (`id-token: write`) installs nothing but the hash-locked
  requirements-deploy.txt, and does so before the credentials step; after that step it runs
  only its own scripts, and they install nothing;
- prod is never deployed with --no-confirm-changeset: one job creates the change set, and the
  job in the `prod` environment (required reviewers) executes exactly that change set;
- requirements-deploy.txt has a hash on every requirement; every workflow's Rust toolchain is
  one exact version (`RUST_TOOLCHAIN`), installed with rustfmt, clippy and both Linux targets.

A `make X` in a credentialed job is checked through what `make -n -B X` would run, so a
prerequisite that installs (such as the dev venv's stamp) is caught too.
"""

import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
CREDENTIALS_ACTION = "aws-actions/configure-aws-credentials"
SHA = re.compile(r"[0-9a-f]{40}")
EXACT_VERSION = re.compile(r"\d+\.\d+\.\d+")
# Commands that bring code onto the runner.
INSTALLS = [
    re.compile(p)
    for p in (
        r"(^|[\s/'\"])pip3?['\"]?\s+(.*\s)?install\b",
        r"-m\s+pip\b",
        r"\buv\s+(pip|tool|add|sync)\b",
        r"\bpipx\b",
        r"\bnpm\s+(install|i|ci)\b",
        r"\bnpx\b",
        r"\bcargo\s+(install|binstall)\b",
        r"\bapt(-get)?\s+install\b",
        r"\brustup\s+(component|target)\s+add\b",
        r"\brustup\s+(toolchain\s+)?install\b",
        r"\b(curl|wget)\b.*\|\s*(sudo\s+)?(ba|z)?sh\b",
    )
]


def workflows():
    assert WORKFLOWS, "no workflow in .github/workflows"
    return [(path, yaml.safe_load(path.read_text())) for path in WORKFLOWS]


def all_jobs():
    for path, workflow in workflows():
        for name, job in (workflow.get("jobs") or {}).items():
            yield path, workflow, name, job


def where(path, job, step=None):
    label = f"{path.name}: job {job}"
    if step is not None:
        first_line = (step.get("run") or "?").strip().splitlines()[0]
        label += f", step {step.get('name') or step.get('uses') or step.get('id') or first_line}"
    return label


def environment(job):
    env = job.get("environment")
    return (env.get("name") if isinstance(env, dict) else env) or ""


def has_id_token(workflow, job):
    permissions = job.get("permissions", workflow.get("permissions"))
    if permissions == "write-all":
        return True
    return isinstance(permissions, dict) and permissions.get("id-token") == "write"


def logical_lines(script):
    return script.replace("\\\n", " ").splitlines()


def make_invocations(script):
    """The arguments of each `make ...` a script runs (simple commands, as the workflows write them)."""
    for line in logical_lines(script):
        if not re.search(r"(^|[;&|(]\s*)g?make\s", line.strip()):
            continue
        for command in re.split(r"&&|\|\||[;|]", line):
            try:
                words = shlex.split(command, comments=True)
            except ValueError:
                words = command.split()
            if words and words[0] in ("make", "gmake"):
                yield words[1:]


def make_dry_run(args):
    """What `make ARGS` would run, prerequisites included, as `make -n -B` prints it."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "-C", str(ROOT), *args],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 0, f"make -n {shlex.join(args)} failed:\n{done.stderr}"
    return done.stdout


def effective_script(step):
    """A step's script, with what each of its `make` invocations would run appended."""
    script = step.get("run") or ""
    expanded = [make_dry_run(args) for args in make_invocations(script)]
    return "\n".join([script, *expanded])


def installs_in(script):
    return [line.strip() for line in logical_lines(script) if any(p.search(line) for p in INSTALLS)]


def is_hash_locked_deploy_install(line):
    """`pip install` of requirements-deploy.txt with --require-hashes, and nothing else."""
    words = shlex.split(line)
    pip = next((i for i, w in enumerate(words) if os.path.basename(w) in ("pip", "pip3")), None)
    if pip is None or "install" not in words[pip + 1:]:
        return False
    rest = words[words.index("install", pip + 1) + 1:]
    requirement_files, i = [], 0
    while i < len(rest):
        word = rest[i]
        if word in ("-r", "--requirement"):
            requirement_files.append(rest[i + 1] if i + 1 < len(rest) else "")
            i += 2
            continue
        if word.startswith("--requirement="):
            requirement_files.append(word.split("=", 1)[1])
        elif word in ("-e", "--editable", "-c", "--constraint", "-i", "--index-url",
                      "--extra-index-url", "-f", "--find-links", "--trusted-host"):
            return False
        elif word == "--only-binary":
            i += 1
        elif not word.startswith("-"):
            return False  # a package named on the command line: not hash-checked
        i += 1
    return "--require-hashes" in rest and requirement_files == ["requirements-deploy.txt"]


def uses_of(workflow):
    for name, job in (workflow.get("jobs") or {}).items():
        if "uses" in job:  # a reusable workflow
            yield name, None, job["uses"]
        for step in job.get("steps") or []:
            if "uses" in step:
                yield name, step, step["uses"]


def test_every_action_is_pinned_by_a_full_commit_sha_with_its_version():
    unpinned, uncommented = [], []
    for path, workflow in workflows():
        for job, _step, uses in uses_of(workflow):
            if uses.startswith("./"):
                continue
            if uses.startswith("docker://"):
                if not re.search(r"@sha256:[0-9a-f]{64}$", uses):
                    unpinned.append(f"{path.name}: job {job}: {uses}")
                continue
            _action, _, ref = uses.partition("@")
            if not SHA.fullmatch(ref):
                unpinned.append(f"{path.name}: job {job}: {uses}")
        for number, line in enumerate(path.read_text().splitlines(), 1):
            m = re.match(r"\s*(-\s+)?uses:\s*(\S+)(.*)$", line)
            if m and not m.group(2).startswith("./") and not re.match(r"\s+#\s*v?\d", m.group(3)):
                uncommented.append(f"{path.name}:{number}: {m.group(2)}")
    assert not unpinned, (
        "these actions still need a full 40-hex commit SHA (uses: owner/repo@<sha> # vX.Y.Z):\n  "
        + "\n  ".join(unpinned)
    )
    assert not uncommented, (
        "a pinned action needs its version in a trailing comment (# vX.Y.Z):\n  " + "\n  ".join(uncommented)
    )


def test_no_expression_is_interpolated_into_a_script():
    found = [
        where(path, name, step)
        for path, _workflow, name, job in all_jobs()
        for step in job.get("steps") or []
        if "${{" in (step.get("run") or "")
    ]
    assert not found, (
        "`${{ }}` in run: pastes the value into the script; pass it through env: and quote it:\n  "
        + "\n  ".join(found)
    )


def test_every_checkout_drops_the_token():
    found = [
        where(path, name, step)
        for path, _workflow, name, job in all_jobs()
        for step in job.get("steps") or []
        if str(step.get("uses", "")).startswith("actions/checkout@")
        and (step.get("with") or {}).get("persist-credentials") is not False
    ]
    assert not found, "actions/checkout without persist-credentials: false:\n  " + "\n  ".join(found)


def test_credentialed_jobs_install_only_the_hash_locked_deploy_tools_and_before_the_role():
    problems, credentialed = [], 0
    for path, workflow, name, job in all_jobs():
        if not has_id_token(workflow, job):
            continue
        credentialed += 1
        steps = job.get("steps") or []
        creds = [i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith(CREDENTIALS_ACTION + "@")]
        if not creds:
            problems.append(f"{where(path, name)}: id-token: write but no {CREDENTIALS_ACTION} step")
            continue
        first_creds = creds[0]
        deploy_installs = 0
        runs_sam = False
        for i, step in enumerate(steps):
            script = effective_script(step)
            if "requirements-dev.txt" in script:
                problems.append(f"{where(path, name, step)}: uses requirements-dev.txt")
            runs_sam = runs_sam or bool(re.search(r"(^|[\s/'\"])sam['\"]?\s+(deploy|package|sync)\b", script, re.M))
            installs = installs_in(script)
            if i > first_creds:
                if "uses" in step and i not in creds:
                    problems.append(f"{where(path, name, step)}: an action runs after the AWS role is assumed")
                for line in installs:
                    problems.append(f"{where(path, name, step)}: installs after the AWS role is assumed: {line}")
            else:
                for line in installs:
                    if is_hash_locked_deploy_install(line):
                        deploy_installs += 1
                    else:
                        problems.append(
                            f"{where(path, name, step)}: installs something other than "
                            f"`pip install --require-hashes -r requirements-deploy.txt`: {line}"
                        )
        if runs_sam and not deploy_installs:
            problems.append(
                f"{where(path, name)}: runs sam without installing requirements-deploy.txt "
                "(--require-hashes) before the credentials step"
            )
    assert credentialed, "no job has id-token: write: which one deploys?"
    assert not problems, "\n  ".join(["credentialed jobs:", *problems])


def prod_jobs():
    for path, workflow, name, job in all_jobs():
        scripts = " ".join(step.get("run") or "" for step in job.get("steps") or [])
        if environment(job).lower().startswith("prod") or re.search(r"\bENV=['\"]?prod\b", scripts):
            yield path, workflow, name, job


def test_no_prod_path_skips_the_change_set_review():
    found = []
    for path, _workflow, name, job in prod_jobs():
        for step in job.get("steps") or []:
            if "--no-confirm-changeset" in effective_script(step):
                found.append(where(path, name, step))
    for target in ("deploy", "changeset", "execute-changeset"):
        try:
            if "--no-confirm-changeset" in make_dry_run([target, "ENV=prod"]):
                found.append(f"make {target} ENV=prod")
        except AssertionError as missing:
            found.append(f"make {target} ENV=prod: {missing}")
    assert not found, "--no-confirm-changeset on a prod path:\n  " + "\n  ".join(found)
    assert list(prod_jobs()), "no prod job found"

    # deploy-ci is the non-interactive one: it must refuse prod (and there is no sam here anyway).
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL") and not k.startswith("AWS_")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "deploy-ci", "ENV=prod",
         "DEPLOY_VENV=/nonexistent/deploy-venv"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode != 0 and "prod" in done.stderr and "no sam" not in done.stderr, (
        "make deploy-ci ENV=prod must refuse prod itself:\n" + done.stdout + done.stderr
    )


def test_prod_executes_exactly_the_reviewed_change_set():
    jobs = {name: (path, job) for path, _workflow, name, job in all_jobs()}
    prod = [(name, path, job) for name, (path, job) in jobs.items() if environment(job) == "prod"]
    assert prod, "no job runs in the `prod` environment (the one with required reviewers)"
    for name, path, job in prod:
        steps = job.get("steps") or []
        scripts = [effective_script(step) for step in steps]
        assert not any(re.search(r"\bsam['\"]?\s+deploy\b", s) for s in scripts), (
            f"{where(path, name)}: runs sam deploy; it must only execute the reviewed change set"
        )
        executes = [
            step for step, script in zip(steps, scripts)
            if re.search(r"cloudformation\s+execute-change-set\s+--change-set-name\s+\"\$CHANGE_SET_ID\"", script)
        ]
        assert executes, f"{where(path, name)}: no `aws cloudformation execute-change-set --change-set-name \"$CHANGE_SET_ID\"`"
        needs = job.get("needs") or []
        needs = [needs] if isinstance(needs, str) else needs
        for step in executes:
            source = str((step.get("env") or {}).get("CHANGE_SET_ID", ""))
            m = re.fullmatch(r"\$\{\{\s*needs\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}", source)
            assert m and m.group(1) in needs, (
                f"{where(path, name, step)}: CHANGE_SET_ID must come from a needed job's output, not {source!r}"
            )
            creator_path, creator = jobs[m.group(1)]
            assert m.group(2) in (creator.get("outputs") or {}), f"{creator_path.name}: job {m.group(1)} has no output {m.group(2)}"
            created = "\n".join(effective_script(s) for s in creator.get("steps") or [])
            assert "--no-execute-changeset" in created, f"job {m.group(1)} does not create the change set with --no-execute-changeset"
            assert "execute-change-set" not in created, f"job {m.group(1)} executes a change set before the review"


def test_values_reach_the_shell_quoted():
    makefile = (ROOT / "Makefile").read_text()
    problems = [f"Makefile pastes {m.group(0)} into a command line" for m in re.finditer(r"(?<!\$)\$[({]SAM_PARAMETERS[)}]", makefile)]
    for m in re.finditer(r"\$\$\{?(SAM_PARAMETERS|CHANGE_SET_ID)", makefile):
        if makefile[m.start() - 1] != '"':
            problems.append(f"Makefile: unquoted {m.group(0)}")
    for path, _workflow, name, job in all_jobs():
        for step in job.get("steps") or []:
            script = step.get("run") or ""
            for m in re.finditer(r"\$\{?(SAM_PARAMETERS|CHANGE_SET_ID)", script):
                if script[m.start() - 1] != '"':
                    problems.append(f"{where(path, name, step)}: unquoted {m.group(0)}")
    assert not problems, "\n  ".join(problems)


def requirements(path):
    """(requirement, options) per logical line of a requirements file, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            yield line


def pinned_version(path, name):
    for line in requirements(path):
        m = re.match(rf"{re.escape(name)}(\[[^\]]*\])?==(\S+)", line, re.I)
        if m:
            return m.group(2)
    return None


def test_requirements_deploy_is_hash_locked():
    path = ROOT / "requirements-deploy.txt"
    assert path.is_file(), "no requirements-deploy.txt (make requirements-deploy writes it)"
    lines = list(requirements(path))
    assert lines, "requirements-deploy.txt is empty"
    problems = []
    for line in lines:
        if line.startswith("-"):
            problems.append(f"option line (index, link or editable): {line}")
        elif not re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?==[^\s;]+", line):
            problems.append(f"not pinned with ==: {line.split()[0]}")
        elif not re.search(r"--hash=sha256:[0-9a-f]{64}\b", line):
            problems.append(f"no --hash=sha256: {line.split()[0]}")
    assert not problems, "requirements-deploy.txt:\n  " + "\n  ".join(problems)

    dev = pinned_version(ROOT / "requirements-dev.txt", "aws-sam-cli")
    assert dev, "requirements-dev.txt pins no aws-sam-cli"
    assert pinned_version(path, "aws-sam-cli") == dev, "requirements-deploy.txt's aws-sam-cli is not requirements-dev.txt's"
    source = ROOT / "requirements-deploy.in"
    if source.is_file():
        assert pinned_version(source, "aws-sam-cli") == dev, "requirements-deploy.in's aws-sam-cli is not requirements-dev.txt's"


def test_rust_toolchain_is_pinned_to_an_exact_version():
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    msrv = cargo.get("workspace", {}).get("package", {}).get("rust-version")
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    for path, workflow in workflows():
        installs = [
            step["run"]
            for job in (workflow.get("jobs") or {}).values()
            for step in job.get("steps") or []
            if "rustup toolchain install" in str(step.get("run", ""))
        ]
        if not installs:
            continue
        channel = str((workflow.get("env") or {}).get("RUST_TOOLCHAIN", ""))
        assert EXACT_VERSION.fullmatch(channel), f"{path.name}: RUST_TOOLCHAIN {channel!r} is not an exact x.y.z version"
        for script in installs:
            assert '"$RUST_TOOLCHAIN"' in script, f"{path.name}: a rustup install not of $RUST_TOOLCHAIN:\n{script}"
            for needed in ("rustfmt", "clippy", "x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"):
                assert needed in script, f"{path.name}: the toolchain is installed without {needed}"
        if msrv:
            assert as_tuple(channel) >= as_tuple(msrv), f"toolchain {channel} is older than rust-version {msrv}"
