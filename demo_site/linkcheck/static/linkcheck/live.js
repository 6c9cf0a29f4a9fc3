// Keeps a job page, or the recent-jobs table, up to date without reloading: polls the JSON
// URL in the element's data-poll and copies each job's fields into its [data-field] cells.
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
    container.querySelectorAll("[data-field]").forEach(function (el) {
      el.textContent = text(job, el.dataset.field);
      if (el.dataset.status !== undefined) el.dataset.status = job.status;
      if (el.dataset.link !== undefined) el.dataset.link = job.link;
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
        if (apply(root, data)) {
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
    document.querySelectorAll("[data-poll]").forEach(function (root) {
      root.dataset.live = "polling";
      poll(root);
    });
  });
})();
