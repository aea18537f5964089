// Installed before anything else runs: every uncaught error, rejected promise or console.error
// lands in the page's error block (the pre element named by report.page.JS_ERRORS_ID), shown to
// the reader and read by the browser test.
(function () {
  var errors = [];
  function show() {
    var el = document.getElementById("grokgrid-js-errors");
    if (el && errors.length) { el.textContent = errors.join("\n"); el.hidden = false; }
  }
  function record(text) { errors.push(String(text)); show(); }
  window.grokgridErrors = errors;
  window.addEventListener("error", function (e) {
    var where = e.filename ? " (" + e.filename.split("/").pop() + ":" + e.lineno + ")" : "";
    record("error: " + (e.message || ("failed to load " + ((e.target && (e.target.src || e.target.href)) || "a resource"))) + where);
  }, true);
  window.addEventListener("unhandledrejection", function (e) {
    record("unhandled rejection: " + (e.reason && (e.reason.stack || e.reason.message) || e.reason));
  });
  var consoleError = console.error;
  console.error = function () {
    record("console.error: " + Array.prototype.map.call(arguments, String).join(" "));
    return consoleError.apply(console, arguments);
  };
  document.addEventListener("DOMContentLoaded", show);
})();
