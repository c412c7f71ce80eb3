"""The dashboard in a real browser (Debian's headless Chromium, driven by selenium) on a live
two-node cluster running a workload: log in with the cluster token, open every page and check
what it shows against what the test made (both nodes and a node's chart of the CPUs a job holds,
an actor with its pid, an object with its owner, a worker's log, a running job and its output,
a placement group, the tasks page's rows); the session cookie is HttpOnly and SameSite=Strict;
and without the token every page, static file, JSON and job endpoint answers 401.

Screenshots go to QUANTA_SCREENSHOT_DIR if set (docs/images/ holds the committed ones), else to
the test's temporary folder.
"""

import json
import os
import secrets
import shutil
import sys
import time
import urllib.error
import urllib.request

import pytest

import quanta
from quanta.cluster_utils import Cluster
from quanta.job_submission import JobSubmissionClient
from quanta.util.placement_group import placement_group

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TOKEN = "dashboard-test-" + secrets.token_hex(16)
PAGES = ["/", "/actors", "/objects", "/workers", "/logs", "/jobs", "/placement-groups", "/tasks", "/timeline"]
ENDPOINTS = ["/api/summary", "/api/metrics", "/api/nodes", "/api/actors", "/api/objects", "/api/workers",
             "/api/placement_groups", "/api/state/jobs", "/api/tasks", "/api/timeline", "/api/logs", "/api/logs/file?node_id=x&name=node.log",
             "/api/version", "/api/jobs/", "/static/app.js", "/static/chart.min.js", "/static/page.html"]


@quanta.remote(resources={"side": 1})
class Greeter:
    def hello(self, text):
        print(text, flush=True)
        return os.getpid()


@quanta.remote(resources={"side": 1})
def length_on_side(data):
    return len(data)


@pytest.fixture(scope="module")
def live():
    if quanta.is_initialized():
        quanta.shutdown()
    saved = {k: os.environ.get(k) for k in ("QUANTA_AUTH_TOKEN", "QUANTA_DASHBOARD_SAMPLE_S")}
    os.environ["QUANTA_AUTH_TOKEN"] = TOKEN
    os.environ["QUANTA_DASHBOARD_SAMPLE_S"] = "0.5"
    cluster = Cluster(initialize_head=True, shutdown_at_exit=False,
                      head_node_args={"num_cpus": 2, "include_dashboard": True, "dashboard_port": 0})
    side = cluster.add_node(num_cpus=2, resources={"side": 2})
    quanta.init(address=cluster.address)
    greeter = Greeter.remote()
    actor_pid = quanta.get(greeter.hello.remote("greetings from the side node"))
    obj = quanta.put(b"d" * (2 << 20))
    pg = placement_group([{"CPU": 1}], name="dash_pg")
    pg.wait(10)
    client = JobSubmissionClient(cluster.head_node.dashboard_url, token=TOKEN)
    job = client.submit_job(entrypoint=f"{sys.executable} -c \"import time; print('job is up', flush=True); "
                                       f"time.sleep(300)\"", entrypoint_num_cpus=1)
    deadline = time.monotonic() + 30
    while "job is up" not in client.get_job_logs(job):
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.1)
    try:
        yield {"cluster": cluster, "side": side, "url": cluster.head_node.dashboard_url, "actor_pid": actor_pid,
               "object": obj, "job": job, "client": client, "greeter": greeter, "pg": pg}
    finally:
        client.stop_job(job)
        quanta.shutdown()
        cluster.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = os.environ.get("QUANTA_SCREENSHOT_DIR") or str(tmp_path_factory.mktemp("screenshots"))
    os.makedirs(folder, exist_ok=True)
    return folder


def status_of(url, headers=None, method="GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def wait(browser, predicate, timeout=20, what="the page"):
    # A page that is being replaced has no body for a moment, and elements of the old one go stale.
    return WebDriverWait(browser, timeout, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        lambda d: predicate(d), message=what)


def open_page(browser, url, path):
    browser.get(url + path)
    wait(browser, lambda d: int(d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") or 0) >= 1,
         what=f"{path} to load")


def text_of(browser, element_id):
    """The element's text ("" while a refresh is replacing it)."""
    try:
        return browser.find_element(By.ID, element_id).text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def row_texts(browser, table_id):
    try:
        return [r.text for r in browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")]
    except StaleElementReferenceException:
        return []


def click(browser, css):
    """Clicks the element matching `css`, again if a refresh replaced it under us."""
    wait(browser, lambda d: _try_click(d, css), what=f"a clickable {css}")


def _try_click(browser, css):
    try:
        browser.find_element(By.CSS_SELECTOR, css).click()
        return True
    except (NoSuchElementException, StaleElementReferenceException):
        return False


def test_without_the_token_everything_is_401(live):
    url = live["url"]
    wrong = [{}, {"Authorization": "Bearer " + "y" * len(TOKEN)}, {"Authorization": TOKEN},
             {"Cookie": "quanta_dashboard_session=" + secrets.token_urlsafe(32)}]
    for path in PAGES + ENDPOINTS:
        for headers in wrong:
            assert status_of(url + path, headers) == 401, (path, headers)
    assert status_of(url + "/api/jobs/", method="POST") == 401
    assert status_of(url + "/api/jobs/" + live["job"] + "/stop", method="POST") == 401
    assert live["client"].get_job_status(live["job"]) == "RUNNING"
    # A browser asking for a page gets the login form with the 401, nothing of the cluster.
    req = urllib.request.Request(url + "/actors", headers={"Accept": "text/html"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    body = e.value.read().decode()
    assert e.value.code == 401 and 'name="token"' in body and "Greeter" not in body
    head = live["cluster"].head_node.node_id
    for path in PAGES + ENDPOINTS:  # the same requests with the token are answered
        path = path.replace("node_id=x", "node_id=" + head)
        assert status_of(url + path, {"Authorization": "Bearer " + TOKEN}) == 200, path


def test_login_and_every_page(live, browser, shots):
    url, cluster, side = live["url"], live["cluster"], live["side"]
    browser.get(url + "/")
    assert browser.find_elements(By.ID, "token") and not browser.find_elements(By.TAG_NAME, "nav")
    browser.find_element(By.ID, "token").send_keys("not the token")
    browser.find_element(By.ID, "login").click()
    wait(browser, lambda d: "not this cluster's token" in d.find_element(By.TAG_NAME, "body").text,
         what="the refusal of a wrong token")  # the page may still be loading after the click
    browser.save_screenshot(os.path.join(shots, "dashboard-login.png"))
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login").click()
    wait(browser, lambda d: d.find_elements(By.ID, "nodes-table"), what="the overview after logging in")
    (cookie,) = [c for c in browser.get_cookies() if c["name"] == "quanta_dashboard_session"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert "quanta_dashboard_session" not in browser.execute_script("return document.cookie")

    # Overview: both nodes, and the chart of CPUs in use: on the head the placement group's bundle
    # and the job's entrypoint CPU (the actor on the side node holds none while idle).
    wait(browser, lambda d: cluster.head_node.node_id in text_of(d, "nodes-table") and
         side.node_id in text_of(d, "nodes-table"), what="both nodes in the table")
    for chart in ("chart-cpu", "chart-cpus", "chart-memory", "chart-store"):
        wait(browser, lambda d: int(d.find_element(By.ID, chart).get_attribute("data-samples")) >= 3,
             what=f"samples in {chart}")
    series = browser.execute_script(
        "return Chart.getChart('chart-cpus').data.datasets.map(d => [d.label, d.data[d.data.length - 1]])")
    assert sorted(v for _, v in series) == [0, 2] and [v for label, v in series if "(head)" in label] == [2], series
    memory = browser.execute_script("return Chart.getChart('chart-memory').data.datasets[0].data.slice(-1)[0]")
    assert 0 < memory < 100
    time.sleep(0.6)  # let the charts draw their latest sample
    browser.save_screenshot(os.path.join(shots, "dashboard-overview.png"))

    open_page(browser, url, "/actors")
    (row,) = wait(browser, lambda d: [t for t in row_texts(d, "actors-table") if "Greeter" in t], what="the actor")
    assert "ALIVE" in row and str(live["actor_pid"]) in row and side.node_id in row
    browser.save_screenshot(os.path.join(shots, "dashboard-actors.png"))

    open_page(browser, url, "/objects")
    (row,) = wait(browser, lambda d: [t for t in row_texts(d, "objects-table") if live["object"].hex() in t],
                  what="the object")
    assert f"DRIVER pid {os.getpid()}" in row and "SHARED_MEMORY" in row and "1 reference" in row
    browser.save_screenshot(os.path.join(shots, "dashboard-objects.png"))

    open_page(browser, url, "/workers")
    (row,) = wait(browser, lambda d: [t for t in row_texts(d, "workers-table") if str(live["actor_pid"]) in t],
                  what="the actor's worker")
    assert "ACTOR" in row
    (log_name,) = [w for w in row.split() if w.startswith("worker-") and w.endswith(".out")]
    browser.save_screenshot(os.path.join(shots, "dashboard-workers.png"))
    click(browser, f'#workers-table a[href*="node_id={side.node_id}"][href$="name={log_name}"]')
    wait(browser, lambda d: "greetings from the side node" in text_of(d, "log-text"), what="the worker's log")
    browser.save_screenshot(os.path.join(shots, "dashboard-logs.png"))

    open_page(browser, url, "/jobs")
    rows = wait(browser, lambda d: [t for t in row_texts(d, "jobs-table") if live["job"] in t], what="the job")
    # Its own row, and its supervisor's: the driver that holds its entrypoint CPU.
    (row,) = [t for t in rows if " SUBMISSION " in t]
    (supervisor,) = [t for t in rows if " SUPERVISOR " in t]
    assert "RUNNING" in row and "RUNNING" in supervisor
    browser.save_screenshot(os.path.join(shots, "dashboard-jobs.png"))
    click(browser, f'#jobs-table a[href$="submission_id={live["job"]}"]')
    wait(browser, lambda d: "job is up" in text_of(d, "job-log"), what="the job's page and output")

    open_page(browser, url, "/placement-groups")
    assert "dash_pg" in text_of(browser, "pg-table") and "CREATED" in text_of(browser, "pg-table")

    open_page(browser, url, "/tasks")  # the greeter's calls, from the head's task table
    wait(browser, lambda d: "hello" in text_of(d, "tasks-table"), what="the actor's calls on the tasks page")
    assert "tasks kept by the head" in text_of(browser, "tasks-stats")

    # The timeline: the tasks' bars per worker, and the object the side node pulled from the head
    # on the side node's "transfers" row; the whole trace is a download.
    assert quanta.get(length_on_side.remote(live["object"])) == 2 << 20
    open_page(browser, url, "/timeline")
    transfer = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#timeline-lanes .bar[data-cat="transfer"]'),
                    what="the transfer on the timeline")[0]
    assert "2.0 MiB" in transfer.get_attribute("title")
    lanes = text_of(browser, "timeline-lanes")
    assert "/ transfers" in lanes and "/ worker " in lanes
    assert browser.find_elements(By.CSS_SELECTOR, '#timeline-lanes .bar[data-cat="actor_task"]')
    assert browser.find_element(By.ID, "timeline-download").get_attribute("href").endswith("/api/timeline?download=1")
    browser.save_screenshot(os.path.join(shots, "dashboard-timeline.png"))
    req = urllib.request.Request(url + "/api/timeline?download=1", headers={"Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert "attachment" in r.headers["Content-Disposition"]
        trace = json.loads(r.read())
    assert [e for e in trace if e.get("cat") == "transfer" and e["args"]["object_id"] == live["object"].hex()]

    browser.get(url + "/logout")
    wait(browser, lambda d: d.find_elements(By.ID, "token"), what="the login form after logging out")
    browser.get(url + "/actors")
    assert browser.find_elements(By.ID, "token") and "Greeter" not in browser.find_element(By.TAG_NAME, "body").text


def test_pages_follow_the_cluster(live, browser):
    """The open actors page shows an actor killed after it was loaded as DEAD, by itself."""
    url = live["url"]
    browser.get(url + "/login")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login").click()
    # The login's redirect must land first, or it can replace the page opened next.
    wait(browser, lambda d: d.find_elements(By.ID, "nodes-table"), what="the overview after logging in")
    open_page(browser, url, "/actors")
    def greeter(d):
        rows = [t for t in row_texts(d, "actors-table") if "Greeter" in t]
        return rows[0] if len(rows) == 1 else ""

    assert "ALIVE" in wait(browser, greeter, what="the live actor")
    quanta.kill(live["greeter"])
    wait(browser, lambda d: " DEAD " in greeter(d), what="the page to show the actor dead")
    assert "kill" in greeter(browser)  # its death cause
