// Job page: poll the status while the photo is being processed and reload when something changes;
// count down the time left. Without JavaScript, a <noscript> refresh does the same job.
(function () {
  "use strict";
  var job = document.getElementById("job");
  if (!job) return;
  var state = job.dataset.state;
  var unlock = job.dataset.unlock;
  var busy = state === "queued" || state === "processing" || unlock === "finishing";

  function poll() {
    fetch(job.dataset.statusUrl, { cache: "no-store", credentials: "omit" })
      .then(function (response) { return response.json(); })
      .then(function (status) {
        if (status.state !== state || status.unlock !== unlock) {
          window.location.reload();
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  if (busy) window.setTimeout(poll, 800);
})();
