// The queue refreshes itself: every 5 seconds the table's body is fetched again, with the
// page's own filters, from the URL the table names (data-rows-url), and swapped in.
// Without JavaScript the page works the same; only the "Refresh" link does this.
(function () {
  "use strict";
  var EVERY_MS = 5000;
  var table = document.querySelector("table[data-rows-url]");
  if (!table || !window.fetch || !("content" in document.createElement("template"))) {
    return;
  }
  var url = table.getAttribute("data-rows-url");
  var summary = document.getElementById("queue-summary");
  var last = null;
  var busy = false;

  function swap(html) {
    if (html === last) {
      return;
    }
    var template = document.createElement("template");
    template.innerHTML = html;
    var fresh = template.content.querySelector("tbody");
    var current = table.querySelector("tbody");
    if (!fresh || !current) {
      return;
    }
    current.replaceWith(fresh);
    last = html;
    if (summary && fresh.dataset.summary) {
      summary.textContent = fresh.dataset.summary;
    }
  }

  function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.redirected) {
          // Signed out (or the session ended): the page itself leads to the login.
          window.location.reload();
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) {
          swap(html);
        }
      })
      .catch(function () {
        // The network or the server is away for a moment: the next round tries again.
      })
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, EVERY_MS);
  document.addEventListener("visibilitychange", refresh);
})();
