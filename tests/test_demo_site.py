"""The demo site in process: its fake API, its API client, its form and pages, and its task
run by a real pool against the fake API over real HTTP."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import urlopen

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from demo_site.linkcheck import api, display, fakeapi, jobs
from demo_site.linkcheck.fakeapi import MAX_CALLS, MAX_LATENCY
from demo_site.linkcheck.forms import MAX_LINKS
from demo_site.linkcheck.tasks import check_link, recheck_link, recheck_recent
from taskq import enqueue
from taskq.backends import RUN_PATH
from taskq.models import Task
from tests.browser.site import StubAPI, demo_app, demo_live, demo_site
from tests.helpers import wait_until
from tests.testapp import dtasks
from tests.testapp import tasks as testapp_tasks

__all__ = ["demo_app", "demo_live", "demo_site"]  # fixtures, imported so pytest finds them here


# The fake API ------------------------------------------------------------------


@pytest.mark.usefixtures("demo_app")
class TestFakeAPI:
    def get(self, client: Client, **query: Any) -> tuple[int, dict[str, Any]]:
        response = client.get("/fake-api/check", query)
        return response.status_code, response.json()

    def test_reports_on_a_link(self, client: Client) -> None:
        status, body = self.get(client, url="https://example.com/a", latency=0, failure_rate=0)
        assert status == 200
        assert body["url"] == "https://example.com/a"
        assert body["http_status"] == 200
        assert 40 <= body["response_ms"] < 940
        # Made up, but the same link always gets the same report.
        assert self.get(client, url="https://example.com/a")[1]["response_ms"] == body["response_ms"]

    def test_a_missing_page_is_reported_as_404(self, client: Client) -> None:
        assert self.get(client, url="https://example.com/missing")[1]["http_status"] == 404

    def test_fails_at_its_failure_rate(self, client: Client, demo_app: Settings) -> None:
        assert self.get(client, url="https://example.com/", failure_rate=1) == (
            503,
            {"error": "simulated outage (failure rate 100%)"},
        )
        demo_app.FAKE_API_FAILURE_RATE = 1.0
        assert self.get(client, url="https://example.com/")[0] == 503

    def test_refuses_hosts_that_cannot_resolve(self, client: Client) -> None:
        assert self.get(client, url="http://nowhere.invalid:8080/x") == (
            422,
            {"error": "cannot resolve host nowhere.invalid"},
        )

    @pytest.mark.parametrize(
        ("query", "error"),
        [
            ({"url": "ftp://example.com/"}, "not an http(s) URL: 'ftp://example.com/'"),
            ({}, "not an http(s) URL: ''"),
            ({"url": "https://example.com/", "latency": "soon"}, "latency must be a number, not 'soon'"),
            ({"url": "https://example.com/", "latency": "6.5"}, "latency must be between 0 and 6, not 6.5"),
            (
                {"url": "https://example.com/", "failure_rate": "-1"},
                "failure_rate must be between 0 and 1, not -1",
            ),
        ],
    )
    def test_bad_queries_get_400(self, client: Client, query: dict[str, str], error: str) -> None:
        assert self.get(client, **query) == (400, {"error": error})

    def test_only_answers_get(self, client: Client) -> None:
        assert client.post("/fake-api/check", {"url": "https://example.com/"}).status_code == 405

    def test_is_gone_when_switched_off(self, client: Client, demo_app: Settings) -> None:
        demo_app.FAKE_API = False
        assert client.get("/fake-api/check", {"url": "https://example.com/"}).status_code == 404

    def test_answers_busy_at_once_while_its_calls_are_all_waiting(self, client: Client) -> None:
        with held_slots():
            started = time.monotonic()
            status, body = self.get(client, url="https://example.com/", latency=5)
            assert time.monotonic() - started < 1  # nothing slept on this request's thread
        assert (status, body) == (
            503,
            {"error": f"busy: at most {MAX_CALLS} calls at a time, try again later"},
        )
        assert self.get(client, url="https://example.com/")[0] == 200  # the slots are free again

    def test_a_call_gives_its_slot_back_when_it_answers(self, client: Client) -> None:
        assert self.get(client, url="https://example.com/", latency=0.05)[0] == 200
        assert self.get(client, url="https://nowhere.invalid/", latency=0.05)[0] == 422
        with held_slots():  # all MAX_CALLS of them could be taken, so none leaked
            pass


@contextmanager
def held_slots() -> Iterator[None]:
    """Take every one of the fake API's call slots, as that many slow calls in progress would."""
    taken = 0
    try:
        for _ in range(MAX_CALLS):
            assert fakeapi.slots.acquire(blocking=False), "a fake API slot was never given back"
            taken += 1
        yield
    finally:
        for _ in range(taken):
            fakeapi.slots.release()


def test_visitors_slow_calls_leave_the_pages_answering(demo_live: str) -> None:
    # The incident: 40 requests for the longest latency, then the home page timed out.
    def call(_: int) -> tuple[int, float]:
        query = urlencode({"url": "https://example.com/", "latency": MAX_LATENCY})
        started = time.monotonic()
        try:
            with urlopen(f"{demo_live}/fake-api/check?{query}", timeout=30) as response:
                return response.status, time.monotonic() - started
        except HTTPError as exc:
            return exc.code, time.monotonic() - started

    with held_slots(), ThreadPoolExecutor(max_workers=8) as executor:
        answers = list(executor.map(call, range(40)))
        with urlopen(f"{demo_live}/", timeout=5) as home:
            assert home.status == 200
    assert {status for status, _ in answers} == {503}
    assert max(seconds for _, seconds in answers) < 5


# The API client, against small real servers ---------------------------------------


@pytest.fixture
def stub(settings: Settings) -> Iterator[StubAPI]:
    server = StubAPI()
    settings.THIRD_PARTY_API_URL = server.url
    settings.THIRD_PARTY_API_TIMEOUT = 0.3
    yield server
    server.close()


class TestClient:
    def test_returns_the_answer_and_sends_the_knobs(self, stub: StubAPI) -> None:
        stub.body = b'{"http_status": 200}'
        assert api.check("https://example.com/?a=1", latency=0.5, failure_rate=0.25) == {"http_status": 200}
        assert stub.paths == [
            "/v1/check?url=https%3A%2F%2Fexample.com%2F%3Fa%3D1&latency=0.5&failure_rate=0.25"
        ]

    def test_leaves_out_knobs_not_given(self, stub: StubAPI) -> None:
        api.check("https://example.com/")
        assert stub.paths == ["/v1/check?url=https%3A%2F%2Fexample.com%2F"]

    @pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
    def test_transient_statuses_are_unavailable(self, stub: StubAPI, status: int) -> None:
        stub.status, stub.body = status, b'{"error": "busy"}'
        with pytest.raises(api.ApiUnavailable, match=f"the API answered HTTP {status}: busy"):
            api.check("https://example.com/")

    def test_other_client_errors_are_rejections(self, stub: StubAPI) -> None:
        stub.status, stub.body = 422, b"not json"
        # Python 3.13 renamed 422's reason phrase to "Unprocessable Content" (RFC 9110).
        with pytest.raises(
            api.ApiRejected, match=r"the API answered HTTP 422: Unprocessable (Entity|Content)"
        ):
            api.check("https://example.com/")

    def test_an_answer_that_is_not_json(self, stub: StubAPI) -> None:
        stub.body = b"<html>"
        with pytest.raises(api.ApiUnavailable, match="the API's answer is not JSON"):
            api.check("https://example.com/")

    def test_a_hung_api_times_out(self, stub: StubAPI) -> None:
        stub.hang.set()
        with pytest.raises(api.ApiUnavailable, match=r"no answer within 0\.3s"):
            api.check("https://example.com/")

    def test_an_unreachable_api(self, stub: StubAPI) -> None:
        stub.close()  # nothing listens on its port any more
        with pytest.raises(api.ApiUnavailable, match="cannot reach the API"):
            api.check("https://example.com/")


# The form and the pages ------------------------------------------------------------


TOO_MANY = "\n".join(f"https://e.example/{i}" for i in range(MAX_LINKS + 1))


@pytest.mark.django_db
@pytest.mark.usefixtures("demo_app")
class TestPages:
    def test_home_shows_the_form_with_the_fake_apis_knobs(self, client: Client) -> None:
        page = client.get("/").content.decode()
        assert 'id="check-form"' in page
        assert 'name="failure_rate"' in page
        assert 'placeholder="0%"' in page
        assert 'href="/admin/taskq/task/"' in page

    def test_no_knobs_for_a_real_api(self, client: Client, demo_app: Settings) -> None:
        demo_app.FAKE_API = False
        page = client.get("/").content.decode()
        assert 'name="urls"' in page
        assert 'name="latency"' not in page

    @pytest.mark.parametrize(
        ("links", "error"),
        [
            ("  \n ", "This field is required."),
            (
                "https://ok.example/\nmailto:x@e.example\ne.example",
                "Not an http(s) link: mailto:x@e.example, e.example",
            ),
            (TOO_MANY, f"Check at most {MAX_LINKS} links at a time, not {MAX_LINKS + 1}."),
        ],
    )
    def test_bad_links_are_refused_and_nothing_is_queued(
        self, client: Client, links: str, error: str
    ) -> None:
        response = client.post("/", {"urls": links})
        assert response.status_code == 200
        assert error in response.content.decode()
        assert not Task.objects.exists()

    def test_one_link_queues_one_job_and_opens_its_page(self, client: Client) -> None:
        response = client.post(
            "/", {"urls": " https://example.com/ \n", "latency": "0.5", "failure_rate": "20"}
        )
        job = Task.objects.get()
        assert response.status_code == 302
        assert response["Location"] == f"/jobs/{job.pk}/"
        assert (job.path, job.args, job.kwargs) == (
            jobs.PATH,
            ["https://example.com/"],
            {"latency": 0.5, "failure_rate": 0.2},
        )
        assert job.max_attempts == 3

    def test_several_links_queue_one_job_each_and_show_the_list(self, client: Client) -> None:
        links = "https://a.example/\nhttps://b.example/\nhttps://a.example/"
        response = client.post("/", {"urls": links}, follow=True)
        created = list(Task.objects.order_by("pk"))
        assert response.redirect_chain == [(f"/?new={created[0].pk},{created[1].pk}", 302)]
        assert [t.args for t in created] == [["https://a.example/"], ["https://b.example/"]]
        assert all(t.kwargs == {} for t in created)  # empty knobs: the site's defaults
        page = response.content.decode()
        assert "Checking 2 links." in page
        assert page.count('data-field="status_label" data-status="queued"') == 2

    def test_the_jobs_just_submitted_lead_the_list_in_the_order_typed(self, client: Client) -> None:
        location = client.post("/", {"urls": "https://a.example/\nhttps://b.example/"})["Location"]
        later = [enqueue(check_link, f"https://other{i}.example/") for i in range(3)]  # other visitors
        page = client.get(location).content.decode()
        rows = listed_ids(page)
        mine = list(
            Task.objects.filter(args__0__in=["https://a.example/", "https://b.example/"]).order_by("pk")
        )
        assert rows[:2] == [job.pk for job in mine]
        assert rows[2:] == [job.pk for job in reversed(later)]
        assert page.count('class="new"') == 2
        polled = client.get("/jobs.json" + location[1:]).json()
        assert [j["id"] for j in polled["jobs"]] == rows

    def test_the_list_pages_twenty_jobs_at_a_time(self, client: Client) -> None:
        created = [enqueue(check_link, f"https://e.example/{i}") for i in range(45)]
        newest_first = [job.pk for job in reversed(created)]
        first = client.get("/").content.decode()
        assert listed_ids(first) == newest_first[:20]
        assert "Page 1 of 3 (45 jobs)" in first
        assert '<a href="?page=2" rel="next">Older</a>' in first
        assert 'rel="prev"' not in first
        last = client.get("/", {"page": 3}).content.decode()
        assert listed_ids(last) == newest_first[40:]
        assert '<a href="?page=2" rel="prev">Newer</a>' in last
        assert 'rel="next"' not in last
        assert 'data-poll="/jobs.json?page=3"' in last
        assert [j["id"] for j in client.get("/jobs.json", {"page": 3}).json()["jobs"]] == newest_first[40:]
        # A page past the end, or not a number, shows the nearest real page.
        assert listed_ids(client.get("/", {"page": 99}).content.decode()) == newest_first[40:]
        assert listed_ids(client.get("/", {"page": "x"}).content.decode()) == newest_first[:20]

    def test_a_broken_link_is_shown_apart_from_its_tasks_success(self, client: Client) -> None:
        job = enqueue(check_link, "https://example.com/missing")
        Task.objects.filter(pk=job.pk).update(
            status="succeeded", attempts=1, result={"http_status": 404, "response_ms": 90}
        )
        row = client.get("/").content.decode()
        assert 'data-status="succeeded">Succeeded</span>' in row
        assert 'data-field="link_label" data-link="broken">Broken</span>' in row
        page = client.get(f"/jobs/{job.pk}/").content.decode()
        assert 'data-link="broken" id="link-verdict">Broken</span>' in page
        data = client.get(f"/jobs/{job.pk}.json").json()
        assert (data["status"], data["link"], data["link_label"]) == ("succeeded", "broken", "Broken")

    def test_the_latency_asked_for_must_be_able_to_answer_in_time(
        self, client: Client, demo_app: Settings
    ) -> None:
        page = client.get("/").content.decode()
        assert 'max="6"' in page
        assert "At most 6 s: the site waits 10 s for an answer" in page
        response = client.post("/", {"urls": "https://example.com/", "latency": "6.5"})
        assert "Ensure this value is less than or equal to 6.0." in response.content.decode()
        assert client.post("/", {"urls": "https://example.com/", "latency": "6"}).status_code == 302
        # A shorter client timeout lowers the bound with it: 3 s / 1.5 = 2 s.
        demo_app.THIRD_PARTY_API_TIMEOUT = 3.0
        response = client.post("/", {"urls": "https://example.com/", "latency": "2.5"})
        assert "Ensure this value is less than or equal to 2.0." in response.content.decode()
        assert Task.objects.count() == 1

    def test_a_job_page_and_its_json(self, client: Client) -> None:
        job = enqueue(check_link, "https://example.com/")
        page = client.get(f"/jobs/{job.pk}/").content.decode()
        assert f'data-poll="/jobs/{job.pk}.json"' in page
        assert "https://example.com/" in page
        data = client.get(f"/jobs/{job.pk}.json").json()
        assert data["status"] == "queued"
        assert data["finished"] is False
        assert data["attempts"] == 0
        assert data["max_attempts"] == 3

    def test_the_recent_jobs_json(self, client: Client) -> None:
        first = enqueue(check_link, "https://a.example/")
        second = enqueue(check_link, "https://b.example/")
        data = client.get("/jobs.json").json()
        assert [j["id"] for j in data["jobs"]] == [second.pk, first.pk]

    def test_other_tasks_are_not_jobs(self, client: Client) -> None:
        other = enqueue(testapp_tasks.add, 1, 2)
        assert client.get(f"/jobs/{other.pk}/").status_code == 404
        assert client.get(f"/jobs/{other.pk}.json").status_code == 404
        assert client.get("/jobs.json").json() == {"jobs": []}


def test_describe_a_job_that_succeeded_after_a_failed_attempt() -> None:
    job = Task(
        pk=7, path=jobs.PATH, args=["https://x.example/"], status="succeeded", attempts=2, max_attempts=3
    )
    job.result = {"http_status": 404, "response_ms": 120}
    job.error = "ApiUnavailable: the API answered HTTP 503: busy\nmore"
    described = jobs.describe(job)
    assert described["verdict"] == described["summary"] == "HTTP 404 in 120 ms"
    assert described["error"] == "ApiUnavailable: the API answered HTTP 503: busy"  # the last attempt's
    assert described["finished"] is True
    job.result = None
    assert jobs.verdict(job) == ""
    assert jobs.summary(job) == "ApiUnavailable: the API answered HTTP 503: busy"


def listed_ids(page: str) -> list[int]:
    """The job ids in the home page's table, top to bottom."""
    return [int(pk) for pk in re.findall(r'<tr data-job="(\d+)"', page)]


@pytest.mark.parametrize(
    ("status", "result", "error", "link", "label"),
    [
        ("queued", None, "", "", "Not yet checked"),
        ("running", None, "ApiUnavailable: the API answered HTTP 503: busy", "", "Not yet checked"),
        ("succeeded", {"http_status": 200}, "", "ok", "OK"),
        ("succeeded", {"http_status": 301}, "", "ok", "OK"),
        ("succeeded", {"http_status": 404}, "", "broken", "Broken"),
        ("succeeded", {"http_status": 500}, "", "broken", "Broken"),
        (
            "failed",
            None,
            "GiveUp: the API answered HTTP 422: cannot resolve host x.invalid",
            "unreachable",
            "Unreachable",
        ),
        ("failed", None, "ApiUnavailable: no answer within 10s", "unknown", "Unknown"),
        ("cancelled", None, "", "unknown", "Unknown"),
    ],
)
def test_the_links_verdict_is_not_the_tasks_status(
    status: str, result: dict[str, int] | None, error: str, link: str, label: str
) -> None:
    job = Task(pk=3, path=jobs.PATH, args=["https://x.example/"], status=status, result=result, error=error)
    described = jobs.describe(job)
    assert (described["link"], described["link_label"]) == (link, label)


# The task, run by a real pool, calling the fake API over HTTP ----------------------


def finished(job: Task) -> Task | None:
    job.refresh_from_db()
    return job if job.finished_at is not None else None


@pytest.mark.usefixtures("demo_site")
class TestJobs:
    def test_a_job_succeeds_with_the_apis_report(self) -> None:
        job = enqueue(check_link, "https://example.com/")
        wait_until(lambda: finished(job))
        assert job.status == "succeeded"
        assert job.attempts == 1
        assert isinstance(job.result, dict)
        assert (job.result["url"], job.result["http_status"]) == ("https://example.com/", 200)

    def test_an_outage_is_retried_then_fails_with_its_error(self) -> None:
        job = enqueue(check_link, "https://example.com/", failure_rate=1.0)
        wait_until(lambda: finished(job))
        assert job.status == "failed"
        assert job.attempts == 3
        assert job.error == "ApiUnavailable: the API answered HTTP 503: simulated outage (failure rate 100%)"

    def test_a_refusal_fails_at_once(self) -> None:
        job = enqueue(check_link, "https://nowhere.invalid/")
        wait_until(lambda: finished(job))
        assert job.status == "failed"
        assert job.attempts == 1
        assert job.error == "GiveUp: the API answered HTTP 422: cannot resolve host nowhere.invalid"
        assert jobs.link_status(job) == "unreachable"

    def test_a_running_check_shows_its_progress_on_the_job_page(self, client: Client) -> None:
        job = enqueue(check_link, "https://example.com/", latency=2)

        # While the API takes its time, the page shows the step the task reported.
        def progress_html() -> str:
            html: str = client.get(f"/jobs/{job.pk}.json").json()["progress_html"]
            return html if "asking the link-checking API" in html else ""

        running = wait_until(progress_html)
        assert '<progress max="100" value="50.0"' in running
        assert "1 of 2: asking the link-checking API" in running
        wait_until(lambda: finished(job))
        assert job.progress_for_display() is not None
        assert job.progress is not None
        assert (job.progress["done"], job.progress["total"]) == (2, 2)
        assert job.progress["note"] == "the API answered"
        assert client.get(f"/jobs/{job.pk}.json").json()["progress_html"].strip() == ""

    def test_the_form_to_the_finished_json(self, client: Client) -> None:
        location = client.post("/", {"urls": "https://example.com/missing", "latency": "0"})["Location"]
        data = wait_until(lambda: (d := client.get(location.rstrip("/") + ".json").json())["finished"] and d)
        assert data["status"] == "succeeded"
        assert data["summary"].startswith("HTTP 404 in ")
        assert (data["link"], data["link_label"]) == ("broken", "Broken")
        assert json.dumps(data["result"])  # plain JSON for the page's script


# Retries, the attempt timeline, and times ------------------------------------------


def retrying_job(**fields: Any) -> Task:
    """A job whose first attempt failed and whose second is due in a minute, as the pool leaves it."""
    started = timezone.now() - timedelta(seconds=5)
    history = [
        {
            "attempt": 1,
            "worker": "web-1:2577:1937be0d",
            "started_at": started.isoformat(),
            "finished_at": (started + timedelta(seconds=1.25)).isoformat(),
            "outcome": "retried",
            "error": "ApiUnavailable: the API answered HTTP 503: busy\nsecond line",
            "exception": "demo_site.linkcheck.api.ApiUnavailable",
            "traceback": "Traceback ...",
        }
    ]
    job = enqueue(check_link, "https://example.com/")
    state = {
        "status": "queued",
        "attempts": 1,
        "started_at": started,
        "run_after": timezone.now() + timedelta(seconds=60),
        "worker": "web-1:2577:1937be0d",
        "error": "ApiUnavailable: the API answered HTTP 503: busy",
        "history": history,
    }
    Task.objects.filter(pk=job.pk).update(**(state | fields))
    job.refresh_from_db()
    return job


@pytest.mark.django_db
@pytest.mark.usefixtures("demo_app")
class TestRetrying:
    def test_a_queued_job_with_attempts_behind_it_reads_as_retrying(self, client: Client) -> None:
        job = retrying_job()
        at = timezone.localtime(job.run_after).strftime("%H:%M:%S UTC")
        data = client.get(f"/jobs/{job.pk}.json").json()
        assert (data["status"], data["state"], data["status_label"]) == ("queued", "retrying", "Retrying")
        assert (
            data["summary"]
            == f"Retrying: attempt 2 of 3 at {at} after ApiUnavailable: the API answered HTTP 503: busy"
        )
        page = client.get(f"/jobs/{job.pk}/").content.decode()
        assert 'data-status="retrying" id="status">Retrying</span>' in page
        retrying = re.search(r'<p class="retrying" id="retrying">(.*?)</p>', page, re.S)
        assert retrying is not None
        assert " ".join(re.sub(r"<[^>]+>", "", retrying[1]).split()) == f"Retrying: attempt 2 of 3 at {at}"
        assert f'<span class="ago" data-since="{job.run_after.isoformat()}" data-due>' in retrying[1]
        home = client.get("/").content.decode()
        assert 'data-field="status_label" data-status="retrying">Retrying</span>' in home

    def test_the_timeline_shows_each_finished_attempt_then_the_next(self, client: Client) -> None:
        job = retrying_job()
        html = client.get(f"/jobs/{job.pk}.json").json()["attempts_html"]
        steps = re.findall(r'<li data-outcome="(\w+)">(.*?)</li>', html, re.S)
        assert [outcome for outcome, _ in steps] == ["retried", "waiting"]
        first = " ".join(re.sub(r"<[^>]+>", "", steps[0][1]).split())
        started = timezone.localtime(job.started_at).strftime("%H:%M:%S UTC")
        assert first == (
            f"Attempt 1 Failed, retried started {started}, ran 1.2 s · web-1, pid 2577 "
            "ApiUnavailable: the API answered HTTP 503: busy"
        )
        assert "Attempt 2" in steps[1][1]

    def test_a_first_run_waits_for_a_runner_and_a_finished_job_has_no_next_attempt(
        self, client: Client
    ) -> None:
        job = enqueue(check_link, "https://example.com/")
        html = client.get(f"/jobs/{job.pk}.json").json()["attempts_html"]
        assert re.findall(r'<li data-outcome="(\w+)">', html) == ["waiting"]
        assert "for a free runner" in html
        assert 'id="retrying"' not in html
        done = retrying_job(status="succeeded", finished_at=timezone.now(), result={"http_status": 200})
        html = client.get(f"/jobs/{done.pk}.json").json()["attempts_html"]
        assert re.findall(r'<li data-outcome="(\w+)">', html) == ["retried"]

    def test_times_show_seconds_and_the_time_zone(self, client: Client) -> None:
        job = retrying_job()
        data = client.get(f"/jobs/{job.pk}.json").json()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", data["enqueued_at"])
        assert (data["worker"], data["pool"]) == ("web-1:2577:1937be0d", "web-1, pid 2577")


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (4, "in 4 s"),
        (-12, "12 s ago"),
        (-150, "2 min ago"),
        (7300, "in 2 h"),
        (-200000, "2 d ago"),
        (0, "0 s ago"),
    ],
)
def test_relative_times_use_the_largest_whole_unit(offset: int, text: str) -> None:
    now = timezone.now()
    assert display.relative(now + timedelta(seconds=offset), now) == text


def test_a_pool_reads_as_host_and_pid() -> None:
    assert display.pool("vm:2577:1937be0d") == "vm, pid 2577"
    assert display.pool("odd-name") == "odd-name"
    assert display.pool("") == ""


# Django's Tasks API and the periodic re-check ------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("demo_app")
class TestRecheck:
    def test_the_schedule_rechecks_the_latest_links_through_djangos_tasks_api(self, client: Client) -> None:
        for url in ["https://a.example/", "https://b.example/", "https://a.example/", "https://c.example/"]:
            enqueue(check_link, url)
        enqueue(check_link, "https://d.example/")
        assert recheck_recent() == ["https://d.example/", "https://c.example/", "https://a.example/"]
        rows = list(Task.objects.filter(path=RUN_PATH).order_by("pk"))
        assert [jobs.url_of(row) for row in rows] == [
            "https://d.example/",
            "https://c.example/",
            "https://a.example/",
        ]
        assert all(row.args[0] == jobs.RECHECK_PATH and row.max_attempts == 3 for row in rows)
        listed = [j["id"] for j in client.get("/jobs.json").json()["jobs"]]
        assert listed[:3] == [row.pk for row in reversed(rows)]
        page = client.get(f"/jobs/{rows[0].pk}/").content.decode()
        assert "Re-checked by the schedule at" in page
        assert "taskq.backends.TaskqBackend" in page
        assert "re-check</span>" in client.get("/").content.decode()

    def test_other_django_tasks_are_not_jobs(self, client: Client) -> None:
        result = dtasks.add.enqueue(1, 2)
        assert client.get(f"/jobs/{result.id}/").status_code == 404

    def test_the_home_page_says_when_the_schedule_ran_and_runs_next(
        self, client: Client, demo_app: Settings
    ) -> None:
        assert "The periodic re-check is off" in client.get("/").content.decode()
        demo_app.TASKQ_SCHEDULE = {"recheck-recent": {"task": jobs.SCHEDULED_PATH, "every": 180}}
        page = client.get("/").content.decode()
        assert "Last run: not yet." in " ".join(page.split())
        assert "every 180s" in page
        state = jobs.recheck_schedule()
        assert state is not None
        assert state.next_run is not None
        assert f'<time datetime="{state.next_run.isoformat()}">' in page


@pytest.mark.usefixtures("demo_site")
def test_a_recheck_runs_in_the_pool_and_django_reads_its_result() -> None:
    result = recheck_link.enqueue("https://example.com/missing")

    def finished() -> bool:
        result.refresh()
        return result.is_finished

    wait_until(finished)
    assert result.status == dtasks.TaskResultStatus.SUCCESSFUL
    assert (result.return_value or {})["http_status"] == 404
    assert jobs.link_status(Task.objects.get(pk=int(result.id))) == "broken"
