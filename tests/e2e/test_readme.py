"""The README's "Invoking a function directly" as a new user runs it: its commands, read from
README.md (never copied here), against the local stack, with the ports of its ready line in
the variables `make run` reads them from."""

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import local_stack

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Invoking a function directly"


def readme_commands(section: str) -> list[str]:
    """The command lines of the first ```sh block of README.md's `section`."""
    text = (ROOT / "README.md").read_text().split(f"\n{section}\n", 1)[1].split("\n## ", 1)[0]
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = (line.strip() for line in block.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def port_of(url: str) -> str:
    return url.rsplit(":", 1)[1]


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The stack's ports by the variable that chooses each, from its ready line."""
    with local_stack(tmp_path_factory.mktemp("local-stack")) as fields:
        yield {"API_PORT": port_of(fields["api"]), "WORKER_PORT": port_of(fields["worker"])}


def answer_of(command: str, ports: dict[str, str]) -> dict:
    """What `command` prints, as JSON, run by bash from the repository's root; it must succeed."""
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, env={**os.environ, **ports},
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{command}\n{done.stderr}"
    return json.loads(done.stdout)


def test_the_readmes_invoke_commands_answer_what_it_says(ports: dict[str, str]) -> None:
    commands = readme_commands(SECTION)
    functions = [re.search(r" invoke (\S+)", c).group(1) for c in commands]
    assert functions == ["refund-api", "refund-worker"]
    api, worker = (answer_of(c, ports) for c in commands)
    fixture = json.loads((ROOT / "events/api-refund.json").read_text())
    ticket = fixture["pathParameters"]["ticket_id"]
    assert api["statusCode"] == 202, api
    assert json.loads(api["body"])["ticket_id"] == ticket
    assert worker == {"batchItemFailures": []}
