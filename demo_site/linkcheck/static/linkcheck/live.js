// Keeps a job page, or the recent-jobs table, up to date without reloading: polls the JSON
// URL in the element's data-poll and copies each job's fields into its [data-field] cells,
// and the server's HTML fragments into its [data-html] parts. Every span[data-since] says how
// long ago (or how soon) its moment is, counted again each second.
(function () {
  "use strict";

  var INTERVAL_MS = 1000;
  var BACKOFF_MS = 5000; // after an error, e.g. while the server restarts

  function text(job, field) {
    if (field === "attempts") return job.attempts + "/" + job.max_attempts;
    if (field === "result") return job.result === null ? "" : JSON.stringify(job.result, null, 2);
    var value = job[field];
    return value === null || value === undefined ? "" : String(value);
  }

  function paint(container, job) {
    container.querySelectorAll("[data-html]").forEach(function (el) {
      var html = job[el.dataset.html];
      // The fragment is escaped by the server's templates; unchanged, it is left alone.
      if (typeof html === "string" && el.liveHtml !== html) {
        el.innerHTML = html;
        el.liveHtml = html;
      }
    });
    container.querySelectorAll("[data-field]").forEach(function (el) {
      el.textContent = text(job, el.dataset.field);
      if (el.dataset.status !== undefined) el.dataset.status = job.state || job.status;
      if (el.dataset.link !== undefined) el.dataset.link = job.link;
    });
    tick();
  }

  // "12 s ago" or "in 4 s", in the largest whole unit; the server's display.relative says the same.
  function relative(iso, now) {
    var seconds = Math.round((Date.parse(iso) - now) / 1000);
    var span = Math.abs(seconds);
    var amount = span + " s";
    [[86400, "d"], [3600, "h"], [60, "min"]].some(function (unit) {
      if (span < unit[0]) return false;
      amount = Math.floor(span / unit[0]) + " " + unit[1];
      return true;
    });
    return seconds > 0 ? "in " + amount : amount + " ago";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (el) {
      if (!el.dataset.since) return;
      // A moment still to come (data-due) that has passed is due, not "3 s ago".
      var due = el.dataset.due !== undefined && Date.parse(el.dataset.since) <= now;
      el.textContent = "(" + (due ? "due now" : relative(el.dataset.since, now)) + ")";
    });
  }

  // Returns true once nothing on the page can change any more.
  function apply(root, data) {
    var list = data.jobs || [data];
    var done = true;
    list.forEach(function (job) {
      var container = root.dataset.job === String(job.id) ? root : root.querySelector('[data-job="' + job.id + '"]');
      if (!container) return; // a job newer than this page: shown on the next visit
      paint(container, job);
      done = done && job.finished;
    });
    return done;
  }

  function poll(root) {
    fetch(root.dataset.poll, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        var done = apply(root, data);
        // Counted, so a test can wait for the page to have taken in the server's answer.
        root.dataset.polls = String(Number(root.dataset.polls || 0) + 1);
        if (done) {
          root.dataset.live = "done";
        } else {
          window.setTimeout(poll, INTERVAL_MS, root);
        }
      })
      .catch(function () {
        window.setTimeout(poll, BACKOFF_MS, root);
      });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    window.setInterval(tick, 1000);
    document.querySelectorAll("[data-poll]").forEach(function (root) {
      root.dataset.live = "polling";
      poll(root);
    });
  });
})();
