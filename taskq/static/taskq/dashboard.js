/* The queue dashboard: fetch the figures again every few seconds and swap them in.
   Without JavaScript the page is complete as served; this only keeps it current. */
(function () {
  "use strict";
  var root = document.getElementById("taskq-dashboard");
  if (!root || !window.fetch) {
    return;
  }
  var seconds = parseInt(root.getAttribute("data-refresh"), 10) || 5;
  var busy = false;

  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "1");
    fetch(url.toString(), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        // Keep open whatever number tables the reader opened.
        var open = [];
        root.querySelectorAll("details[open]").forEach(function (el) {
          open.push(el.id);
        });
        root.innerHTML = html;
        open.forEach(function (id) {
          var el = id && document.getElementById(id);
          if (el) {
            el.open = true;
          }
        });
        root.removeAttribute("data-stale");
      })
      .catch(function () {
        root.setAttribute("data-stale", "true");
      })
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, seconds * 1000);
})();
