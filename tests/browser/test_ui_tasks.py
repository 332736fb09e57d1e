"""The task screens in a real browser: list, view with a Run form, create from YAML, errors."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from browser_support import shoot
from playwright.sync_api import expect

from trainyard.server.web.tasks import highlight_yaml

XSS = "<img src=x onerror=alert(1)>"

FORM_TASK = """\
# A task with one parameter of every kind the form knows.
name: form-task
description: trained from the form
parameters:
- name: seed
  type: int
  required: true
  description: random seed
- name: rate
  type: float
  default: 0.5
- name: verbose
  type: bool
  default: false
- name: mode
  type: string
  choices: [fast, slow]
  default: fast
- name: note
  type: string
  default: "hello 'there'"
resources:
- name: worker
  replicas: 2
  command: >-
    sleep 1.5; echo seed={{ .seed }} rate={{ .rate }} mode={{ .mode }} verbose={{ .verbose }}
  resources: {requests: {cpu: 500m, memory: 256Mi}}
"""


def _create(api: httpx.Client, text: str, project: str = "default") -> dict[str, Any]:
    response = api.post(f"/projects/{project}/tasks", json={"manifest": text})
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def _runs(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get("/runs", params={"project": "default", "archived": "all"})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_run_from_the_task_form_goes_queued_running_complete(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    _create(api, FORM_TASK)
    page.goto(f"{live_server.url}/projects/default/tasks")
    row = page.locator('tr[data-task="form-task"]')
    expect(row).to_contain_text("worker×2")
    expect(row).to_contain_text("trainyard")  # the native format's name
    expect(row.locator("td.num")).to_have_text("0")
    shoot(page, "tasks")
    row.get_by_role("link", name="form-task").click()

    # The YAML is highlighted: keys, strings, comments and numbers each get their colour.
    yaml = page.locator("#task-yaml")
    expect(yaml.locator(".y-c").first).to_have_text(
        "# A task with one parameter of every kind the form knows."
    )
    expect(yaml.locator(".y-k", has_text="replicas")).to_have_count(1)
    expect(yaml.locator(".y-n", has_text="0.5")).to_have_count(1)
    expect(yaml.locator(".y-s", has_text="\"hello 'there'\"")).to_have_count(1)
    expect(page.locator('tr[data-resource="worker"]')).to_contain_text("256Mi")

    # Typed inputs with their defaults; the required one is marked.
    seed = page.get_by_label(re.compile("^seed"))
    expect(seed).to_have_attribute("type", "number")
    expect(seed).to_have_attribute("step", "1")
    expect(seed).to_have_value("")
    expect(page.locator("label", has_text="seed").locator(".req")).to_be_visible()
    rate = page.get_by_label(re.compile("^rate"))
    expect(rate).to_have_attribute("step", "any")
    expect(rate).to_have_value("0.5")
    expect(page.get_by_label(re.compile("^verbose"))).to_have_attribute("type", "checkbox")
    expect(page.get_by_label(re.compile("^verbose"))).not_to_be_checked()
    mode = page.get_by_label(re.compile("^mode"))
    expect(mode).to_have_value("fast")
    expect(mode.locator("option")).to_have_text(["fast", "slow"])
    expect(page.get_by_label(re.compile("^note"))).to_have_value("hello 'there'")
    shoot(page, "task")

    seed.fill("7")
    mode.select_option("slow")
    page.get_by_label(re.compile("^verbose")).check()
    # Scheduling: priority and DKube's "start immediately" go with the submission.
    expect(page.get_by_label(re.compile("^priority"))).to_have_value("0")
    page.get_by_label(re.compile("^priority")).fill("3")
    page.get_by_label("start immediately").check()
    page.get_by_role("button", name="Run").click()
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    page.evaluate("window.__same_page = true")

    # Watch the status badge change by itself until the run completes.
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = (page.locator("#run-status").text_content() or "").strip()
        word = text.split()[-1] if text else ""
        if not seen or seen[-1] != word:
            seen.append(word)
        if word == "complete":
            break
        page.wait_for_timeout(50)
    assert seen[-1] == "complete", seen
    assert seen[0] in {"queued", "starting", "running"}, seen
    assert "running" in seen, seen
    assert page.evaluate("window.__same_page") is True, "the page reloaded"

    run = api.get(f"/runs/{run_id}").json()
    assert run["task"] == "form-task"
    assert run["parameters"]["seed"] == 7
    assert run["parameters"]["mode"] == "slow"
    assert run["parameters"]["verbose"] is True
    assert run["parameters"]["rate"] == 0.5
    assert run["priority"] == 3 and run["start_immediately"] is True
    lines = page.locator("#log-lines .line")
    expect(lines.filter(has_text="seed=7 rate=0.5 mode=slow verbose=true")).to_have_count(2)

    page.goto(f"{live_server.url}/projects/default/tasks")
    expect(page.locator('tr[data-task="form-task"] td.num')).to_have_text("1")


def test_ill_typed_or_missing_parameter_shows_the_error_and_creates_nothing(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    _create(api, FORM_TASK)
    url = f"{live_server.url}/projects/default/tasks/form-task"
    page.goto(url)
    error = page.locator("#run-error")
    seed = page.get_by_label(re.compile("^seed"))

    page.get_by_role("button", name="Run").click()
    expect(error).to_contain_text("missing required parameter 'seed'")
    expect(seed).to_have_attribute("aria-invalid", "true")
    expect(seed).to_be_focused()

    seed.fill("1.5")
    page.get_by_label(re.compile("^rate")).fill("2")
    seed.press("Enter")  # the keyboard submits the form too
    expect(error).to_contain_text("parameter 'seed' (int)")
    expect(error).to_contain_text("1.5")
    expect(seed).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label(re.compile("^rate"))).not_to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("button", name="Run")).to_be_enabled()
    shoot(page, "task-run-error")
    assert page.url == url
    assert _runs(api) == []
    assert api.get("/projects/default/tasks/form-task").json()["runs_count"] == 0


def test_create_a_task_from_pasted_yaml(page: Any, live_server: Any, api: httpx.Client) -> None:
    page.goto(f"{live_server.url}/projects/default/tasks")
    expect(page.get_by_text("No tasks in default yet.")).to_be_visible()
    expect(page.get_by_role("link", name="Tasks")).to_have_attribute("aria-current", "page")
    page.get_by_role("link", name="New task").click()
    text = (
        "name: pasted\n"
        "parameters:\n- name: epochs\n  type: int\n  default: 3\n"
        "resources:\n- name: ps\n  command: sleep 1\n- name: worker\n  replicas: 3\n"
        "  command: echo {{ .epochs }}\n"
    )
    page.get_by_label("Paste the manifest (YAML)").fill(text)
    shoot(page, "task-new")
    page.get_by_role("button", name="Create task").click()
    page.wait_for_url(f"{live_server.url}/projects/default/tasks/pasted")
    expect(page.get_by_role("heading", name=re.compile("pasted"))).to_be_visible()
    expect(page.get_by_label(re.compile("^epochs"))).to_have_value("3")
    stored = api.get("/projects/default/tasks/pasted").json()
    assert stored["manifest"] == text
    assert [r["replicas"] for r in stored["spec"]["resources"]] == [1, 3]
    page.goto(f"{live_server.url}/projects/default/tasks")
    expect(page.locator('tr[data-task="pasted"]')).to_contain_text("ps×1, worker×3")

    # The same name again is a conflict, shown as such; "replace" updates it.
    page.goto(f"{live_server.url}/projects/default/tasks/new")
    page.get_by_label("Paste the manifest (YAML)").fill(text.replace("replicas: 3", "replicas: 4"))
    page.get_by_role("button", name="Create task").click()
    expect(page.locator("#task-error-message")).to_contain_text("already exists")
    page.get_by_label("Replace the task if it exists").check()
    page.get_by_role("button", name="Create task").click()
    page.wait_for_url(f"{live_server.url}/projects/default/tasks/pasted")
    expect(page.locator('tr[data-resource="worker"]')).to_contain_text("4")


def test_create_a_task_from_an_uploaded_file(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    text = "name: uploaded\nresources:\n- name: worker\n  command: echo up\n"
    page.goto(f"{live_server.url}/projects/default/tasks/new")
    page.set_input_files(
        "#task-file", files=[{"name": "up.yml", "mimeType": "text/yaml", "buffer": text.encode()}]
    )
    expect(page.get_by_label("Paste the manifest (YAML)")).to_have_value(text)
    page.get_by_role("button", name="Create task").click()
    page.wait_for_url(f"{live_server.url}/projects/default/tasks/uploaded")
    assert api.get("/projects/default/tasks/uploaded").json()["manifest"] == text

    # A broken upload names the file in its errors.
    page.goto(f"{live_server.url}/projects/default/tasks/new")
    broken = b"name: up2\nresources:\n- name: Worker_1\n  command: echo\n"
    page.set_input_files(
        "#task-file", files=[{"name": "bad.yml", "mimeType": "text/yaml", "buffer": broken}]
    )
    expect(page.get_by_label("Paste the manifest (YAML)")).to_have_value(broken.decode())
    page.get_by_role("button", name="Create task").click()
    expect(page.locator("#task-error-message")).to_contain_text("bad.yml")
    expect(page.locator('#task-marked .ln.flag[data-line="3"]')).to_be_visible()


def test_the_highlighter_escapes_every_piece() -> None:
    lines = highlight_yaml(
        "# <b>c</b>\n"
        "key: 'a # not a comment' # a comment\n"
        "- name: <script>x</script>\n"
        '"quoted key": 12.5\n'
        "url: http://example.com:80/x\n"
        "flag: true\n"
        "\n"
        "  - plain item\n"
    )
    assert [str(x) for x in lines] == [
        '<span class="y-c"># &lt;b&gt;c&lt;/b&gt;</span>',
        '<span class="y-k">key</span>: <span class="y-s">&#39;a # not a comment&#39;</span> '
        '<span class="y-c"># a comment</span>',
        '- <span class="y-k">name</span>: &lt;script&gt;x&lt;/script&gt;',
        '<span class="y-k">&#34;quoted key&#34;</span>: <span class="y-n">12.5</span>',
        '<span class="y-k">url</span>: http://example.com:80/x',
        '<span class="y-k">flag</span>: <span class="y-w">true</span>',
        "",
        "  - plain item",
    ]


def test_a_malformed_paste_shows_line_and_column_and_marks_the_lines(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    text = (
        "name: broken\n"
        "resources:\n"
        "- name: worker\n"
        "  replicas: -2\n"
        "  command: echo hi\n"
        f"  comand: {XSS}\n"
    )
    expected = api.post("/projects/default/tasks", json={"manifest": text})
    assert expected.status_code == 400
    issues = expected.json()["error"]["fields"]["issues"]
    assert issues, expected.text
    page.goto(f"{live_server.url}/projects/default/tasks/new")
    page.get_by_label("Paste the manifest (YAML)").fill(text)
    page.get_by_role("button", name="Create task").click()
    items = page.locator("#task-issues li")
    expect(items).to_have_count(len(issues))
    for item, issue in zip(items.all(), issues, strict=True):
        expect(item.locator("code")).to_have_text(f"{issue['line']}:{issue['column']}")
        expect(item).to_contain_text(issue["message"])
    flagged = sorted({i["line"] for i in issues})
    marked = page.locator("#task-marked .ln.flag")
    expect(marked).to_have_count(len(flagged))
    for line in flagged:
        expect(page.locator(f'#task-marked .ln.flag[data-line="{line}"]')).to_contain_text(
            text.splitlines()[line - 1].strip()
        )
    # The pasted payload is shown as text in the marked copy, never run.
    expect(page.locator("#task-marked")).to_contain_text(XSS)
    assert page.locator("#task-marked img").count() == 0
    shoot(page, "task-new-errors")

    # A YAML syntax error gets its line:column too.
    page.get_by_label("Paste the manifest (YAML)").fill("name: x\nresources: [\n  - a: b\n")
    page.get_by_role("button", name="Create task").click()
    expect(page.locator("#task-issues li code").first).to_have_text(re.compile(r"^\d+:\d+$"))
    expect(page.locator("#task-marked .ln.flag")).not_to_have_count(0)
    assert api.get("/projects/default/tasks").json()["items"] == []


def test_xss_in_a_parameter_default_is_shown_as_text(
    page: Any, live_server: Any, api: httpx.Client
) -> None:
    text = (
        "name: xss-task\n"
        f'description: "{XSS}"\n'
        "parameters:\n"
        f"- name: note\n  type: string\n  default: '{XSS}'\n"
        "  description: '<script>alert(2)</script>'\n"
        f"- name: pick\n  type: string\n  choices: ['{XSS}', plain]\n"
        "resources:\n- name: worker\n  command: echo {{ .note }}\n"
        f"# {XSS}\n"
    )
    _create(api, text)
    page.goto(f"{live_server.url}/projects/default/tasks/xss-task")
    expect(page.get_by_label(re.compile("^note"))).to_have_value(XSS)
    expect(page.get_by_text("<script>alert(2)</script>", exact=True)).to_be_visible()
    expect(page.locator("#task-yaml")).to_contain_text(f"default: '{XSS}'")
    expect(page.locator("#task-yaml .y-c", has_text=XSS)).to_have_count(1)
    expect(page.get_by_label(re.compile("^pick")).locator("option")).to_have_text(
        ["choose…", XSS, "plain"]  # no default: required
    )
    assert page.locator("main img").count() == 0
    assert page.locator("main script").count() == 1  # the form's own
    page.goto(f"{live_server.url}/projects/default/tasks")
    expect(page.locator('tr[data-task="xss-task"]')).to_contain_text(XSS)


def test_unknown_task_and_project_get_the_404_page(page: Any, live_server: Any) -> None:
    response = page.goto(f"{live_server.url}/projects/default/tasks/nope")
    assert response is not None and response.status == 404
    expect(page.get_by_text("task 'default/nope' not found")).to_be_visible()
    response = page.goto(f"{live_server.url}/projects/ghost/tasks")
    assert response is not None and response.status == 404
    response = page.goto(f"{live_server.url}/projects/ghost/tasks/new")
    assert response is not None and response.status == 404
