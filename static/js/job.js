// Job page: live status without reloading, the before/after comparison, backgrounds behind the
// preview (and in the download link), a countdown to deletion, a check of the unlock code, and the
// people outlined on the preview, where a tap keeps or lets go of someone.
// Without JavaScript the page refreshes itself while busy (<noscript> meta refresh), shows both
// images side by side and offers a link per background: everything here is an improvement.
(function () {
  "use strict";
  var job = document.getElementById("job");
  if (!job) return;
  var pageUrl = job.dataset.pageUrl;
  var statusUrl = job.dataset.statusUrl;
  var state = job.dataset.state;
  var delivery = job.dataset.delivery;
  var choosing = job.dataset.choosing;
  var deadline = Date.now() + parseInt(job.dataset.expiresIn, 10) * 1000;
  var busySince = Date.now();
  // The visitor's background choice survives the page updating itself (e.g. after unlocking).
  var background = "transparent";
  var customColour = "#438edb";
  var comparePercent = 50;

  // A page answering a POST (a refused code) sits at a POST-only address: make reloads and
  // bookmarks use the job page's own address.
  if (window.location.pathname !== pageUrl && window.history.replaceState) {
    window.history.replaceState(null, "", pageUrl);
  }

  function isBusy() {
    return state === "queued" || state === "processing" || delivery === "finishing" || choosing === "true";
  }

  // --- Live status -------------------------------------------------------------------------

  function poll() {
    fetch(statusUrl, { cache: "no-store", credentials: "omit" })
      .then(function (response) {
        if (response.status === 404) return { state: "gone" };
        if (!response.ok) throw new Error("status " + response.status);
        return response.json();
      })
      .then(function (status) {
        if (status.state === "gone") {
          window.location.reload(); // the server's "expired or deleted" page says what happened
          return;
        }
        deadline = Date.now() + status.expires_in * 1000;
        if (status.state !== state || status.delivery !== delivery || String(status.choosing) !== choosing) update();
        else if (isBusy()) window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }

  // Fetch the job page again and put its changing parts in place. The status element stays the
  // same node, so screen readers announce its new text (a live region that is replaced is not).
  function update() {
    fetch(pageUrl, { cache: "no-store", credentials: "omit" })
      .then(function (response) {
        if (!response.ok) throw new Error("page " + response.status);
        return response.text();
      })
      .then(function (html) {
        if (!applyPage(html)) throw new Error("no job in page");
      })
      .catch(function () { window.setTimeout(update, 3000); });
  }

  // Put a fresh copy of the job page's changing parts in place; false if `html` is not one.
  // Focus stays on the control the visitor was using (`focused`, or the focused element's id).
  function applyPage(html, focused) {
    var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("job");
    if (!fresh) return false;
    var wasBusy = isBusy();
    focused = focused || (document.activeElement && document.activeElement.id);
    state = fresh.dataset.state;
    delivery = fresh.dataset.delivery;
    choosing = fresh.dataset.choosing;
    job.dataset.state = state;
    job.dataset.delivery = delivery;
    job.dataset.choosing = choosing;
    ["steps", "job-body", "job-actions"].forEach(function (id) {
      var old = document.getElementById(id);
      var replacement = fresh.querySelector("#" + id);
      if (old && replacement) old.replaceWith(document.importNode(replacement, true));
    });
    document.getElementById("status").innerHTML = fresh.querySelector("#status").innerHTML;
    if (!wasBusy || isBusy()) busySince = Date.now();
    enhance();
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
    if (isBusy()) window.setTimeout(poll, 1000);
    return true;
  }

  function tickElapsed() {
    var seconds = Math.floor((Date.now() - busySince) / 1000);
    Array.prototype.forEach.call(document.querySelectorAll("[data-elapsed]"), function (element) {
      element.textContent = seconds >= 2 ? seconds + " s" : "";
    });
  }

  // --- Countdown to deletion -----------------------------------------------------------------

  var countdown = document.getElementById("countdown");
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function tickCountdown() {
    var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    if (left === 0) {
      window.location.reload();
      return;
    }
    var minutes = Math.floor(left / 60);
    countdown.textContent = job.dataset.msgCountdown.replace("{time}", minutes + ":" + two(left % 60));
  }

  // --- Before/after comparison ---------------------------------------------------------------

  function enhanceCompare() {
    var compare = document.getElementById("compare");
    if (!compare) return;
    var range = document.getElementById("compare-range");
    var before = compare.querySelector(".compare-before");
    var handle = compare.querySelector(".compare-handle");
    function show(percent) {
      comparePercent = percent;
      // Clip the original to the left part: CSSOM styles are allowed by the CSP, style="" is not.
      before.style.clipPath = "inset(0 " + (100 - percent) + "% 0 0)";
      handle.style.left = percent + "%";
      range.setAttribute("aria-valuetext", job.dataset.msgCompare.replace("{percent}", percent));
    }
    var after = compare.querySelector(".compare-after img");
    var aspect = parseInt(after.getAttribute("width"), 10) / parseInt(after.getAttribute("height"), 10);
    // Tall portraits stay within the screen's height: the stylesheet sizes the box by this ratio.
    if (aspect > 0) compare.style.setProperty("--aspect", aspect.toFixed(4));
    range.value = comparePercent;
    range.addEventListener("input", function () { show(parseInt(range.value, 10)); });
    show(comparePercent);
  }

  // --- Backgrounds ---------------------------------------------------------------------------

  function hexOf(colour) {
    return colour.replace("#", "").toUpperCase();
  }

  function applyBackground() {
    var stage = document.getElementById("stage");
    var chip = document.getElementById("custom-chip");
    var choice = document.querySelector("input[name=background][value=" + background + "]");
    if (chip) chip.style.backgroundColor = customColour;
    if (stage && stage.classList.contains("bg-none") === false) {
      // An ID photo's swatches name their colour's class (its own background is "default").
      stage.className = "stage bg-" + ((choice && choice.dataset.bg) || background);
      stage.style.backgroundColor = background === "custom" ? customColour : "";
    }
    var link = document.getElementById("download-link");
    if (link && link.dataset.href && choice) {
      var value = background === "custom" ? hexOf(customColour) : background;
      link.href = link.dataset.href + (value === "transparent" ? "" : "?background=" + encodeURIComponent(value));
      link.textContent = choice.dataset.downloadLabel.replace("{colour}", "#" + hexOf(customColour));
    }
  }

  function enhanceBackgrounds() {
    var picker = document.getElementById("backgrounds");
    if (!picker) return;
    var colour = document.getElementById("custom-colour");
    var customChoice = document.getElementById("bg-custom-choice");
    if (colour) colour.value = customColour;
    // A choice this picker does not offer (an ID photo has no "transparent") becomes its first.
    if (!picker.querySelector("input[name=background][value='" + background + "']")) {
      background = picker.querySelector("input[name=background]").value;
    }
    Array.prototype.forEach.call(picker.querySelectorAll("input[name=background]"), function (radio) {
      radio.checked = radio.value === background;
      radio.addEventListener("change", function () {
        if (radio.checked) {
          background = radio.value;
          applyBackground();
        }
      });
    });
    if (colour) {
      colour.addEventListener("input", function () {
        customColour = colour.value;
        background = "custom";
        customChoice.checked = true;
        applyBackground();
      });
    }
    applyBackground();
  }

  // --- Unlock code ---------------------------------------------------------------------------

  var ALPHABET = /^[0-9A-Z]{16}$/;
  function enhanceUnlock() {
    var form = document.getElementById("unlock-form");
    if (!form) return;
    var input = document.getElementById("id_code");
    var problem = document.getElementById("code-problem");
    form.noValidate = true; // our message, in the page's language, instead of the browser's bubble
    form.addEventListener("submit", function (event) {
      // The server is the judge; this only catches what is certainly not a code, before sending.
      var cleaned = input.value.replace(/[\s\-\u2010-\u2015\u2212]+/g, "").toUpperCase();
      if (!ALPHABET.test(cleaned)) {
        event.preventDefault();
        problem.textContent = job.dataset.msgCode;
        problem.hidden = false;
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", "code-hint code-problem");
        input.focus();
        return;
      }
      form.querySelector("button[type=submit]").disabled = true;
    });
    input.addEventListener("input", function () {
      if (!problem.hidden) {
        problem.hidden = true;
        input.removeAttribute("aria-invalid");
      }
    });
  }

  // --- Who stays ----------------------------------------------------------------------------

  // Each person's checkbox is the control (keyboard, screen readers, no scripts); the outlines on
  // the preview are a pointer's shortcut to the same checkboxes.
  function enhancePeople() {
    var form = document.getElementById("people-form");
    if (!form) return;
    var overlay = document.getElementById("people-overlay");
    var live = document.getElementById("people-live");
    var problem = document.getElementById("people-problem");
    var inputs = Array.prototype.slice.call(form.querySelectorAll("input[name=keep]"));
    var outlines = {};

    function message(input) {
      var text = input.checked ? form.dataset.msgKept : form.dataset.msgGone;
      return text.replace("{number}", input.dataset.number) + " " + form.dataset.msgUpdate;
    }
    function show(input) {
      var outline = outlines[input.value];
      if (!outline) return;
      outline.classList.toggle("kept", input.checked);
      outline.classList.toggle("gone", !input.checked);
    }

    if (overlay) {
      overlay.textContent = "";
      // Larger people first, so that a smaller one standing in front stays on top and tappable.
      inputs
        .map(function (input) {
          var box = input.dataset.box.split(",").map(parseFloat);
          return { input: input, box: box, area: box[2] * box[3] };
        })
        .sort(function (a, b) { return b.area - a.area; })
        .forEach(function (person) {
          var outline = document.createElement("button");
          outline.type = "button";
          outline.tabIndex = -1; // the checkbox is the keyboard's control; this is for pointers
          outline.className = "person-outline";
          outline.style.left = person.box[0] * 100 + "%";
          outline.style.top = person.box[1] * 100 + "%";
          outline.style.width = person.box[2] * 100 + "%";
          outline.style.height = person.box[3] * 100 + "%";
          var badge = document.createElement("span");
          badge.className = "person-badge";
          badge.textContent = person.input.dataset.number;
          outline.appendChild(badge);
          outline.addEventListener("click", function () {
            person.input.checked = !person.input.checked;
            person.input.dispatchEvent(new Event("change"));
          });
          outlines[person.input.value] = outline;
          overlay.appendChild(outline);
          show(person.input);
        });
    }

    inputs.forEach(function (input) {
      input.addEventListener("change", function () {
        show(input);
        problem.hidden = true;
        live.textContent = message(input);
      });
    });

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!inputs.some(function (input) { return input.checked; })) {
        problem.textContent = form.dataset.msgNobody;
        problem.hidden = false;
        return;
      }
      var button = document.getElementById("people-submit");
      var focused = document.activeElement && document.activeElement.id;
      button.disabled = true;
      // The server answers 303 to the job page (fetch follows it), or a page saying why not: both
      // are put in place like any update, and the page then polls until the redraw is done.
      fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        cache: "no-store",
        credentials: "omit",
      })
        .then(function (response) { return response.text(); })
        .then(function (html) {
          if (!applyPage(html, focused)) throw new Error("not the job page");
        })
        .catch(function () {
          button.disabled = false;
          problem.textContent = form.dataset.msgBusy;
          problem.hidden = false;
        });
    });
  }

  function enhance() {
    enhanceCompare();
    enhancePeople();
    enhanceBackgrounds();
    enhanceUnlock();
    tickElapsed();
  }

  enhance();
  tickCountdown();
  window.setInterval(function () {
    tickCountdown();
    tickElapsed();
  }, 1000);
  if (isBusy()) window.setTimeout(poll, 700);
})();
