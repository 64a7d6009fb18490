// Polls the order status with backoff and flips the pay page to "paid" by itself.
// Stops at a terminal state. No inline script: this file is the page's only code.
(function () {
  "use strict";
  var root = document.getElementById("pay");
  if (!root) { return; }
  var statusUrl = root.getAttribute("data-status-url");
  var deadline = Date.now() + 1000 * parseInt(root.getAttribute("data-seconds-left"), 10);
  var delay = 1000;
  var MAX_DELAY = 10000;

  function show(id) {
    ["state-pending", "state-paid", "state-expired"].forEach(function (name) {
      document.getElementById(name).hidden = name !== id;
    });
  }

  function tickCountdown() {
    var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    var el = document.getElementById("countdown");
    if (el) { el.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0"); }
    if (left > 0) { setTimeout(tickCountdown, 1000); }
  }

  function apply(body) {
    root.setAttribute("data-status", body.status);
    if (body.paid) { show("state-paid"); return true; }
    if (body.status === "closed" || body.expired) { show("state-expired"); }
    return body.terminal;
  }

  function poll() {
    fetch(statusUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("status " + response.status); }
        return response.json();
      })
      .then(function (body) {
        if (!apply(body)) { schedule(); }
      })
      .catch(function () { schedule(); });
  }

  function schedule() {
    setTimeout(poll, delay);
    delay = Math.min(MAX_DELAY, Math.round(delay * 1.5));
  }

  if (root.getAttribute("data-status") === "pending") {
    tickCountdown();
    schedule();
  }
}());
