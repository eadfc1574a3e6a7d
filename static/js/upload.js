// Upload page: check the file in the browser, send it with a progress bar, follow the redirect.
// Without JavaScript the form posts normally; everything here is an improvement on top.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) return;
  var input = document.getElementById("id_image");
  var dropzone = document.getElementById("dropzone");
  var fileName = document.getElementById("file-name");
  var errorBox = document.getElementById("client-error");
  var progress = document.getElementById("upload-progress");
  var bar = progress.querySelector(".progress-bar");
  var button = form.querySelector("button[type=submit]");
  var maxBytes = parseInt(form.dataset.maxBytes, 10);
  var accepted = ["image/jpeg", "image/png", "image/webp"];

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
  }

  function check(file) {
    if (!file) return false;
    if (file.type && accepted.indexOf(file.type) === -1) { showError(form.dataset.msgType); return false; }
    if (file.size > maxBytes) { showError(form.dataset.msgSize); return false; }
    showError("");
    return true;
  }

  function use(file) {
    if (!check(file)) return;
    var transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    fileName.textContent = file.name || "";
  }

  input.addEventListener("change", function () {
    var file = input.files[0];
    fileName.textContent = file ? file.name : "";
    if (file) check(file);
  });

  ["dragenter", "dragover"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) { event.preventDefault(); dropzone.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (type) {
    dropzone.addEventListener(type, function () { dropzone.classList.remove("dragging"); });
  });
  dropzone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer.files.length) use(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", function (event) {
    var items = (event.clipboardData || {}).files || [];
    for (var i = 0; i < items.length; i++) {
      if (items[i].type.indexOf("image/") === 0) { use(items[i]); event.preventDefault(); return; }
    }
  });

  form.addEventListener("submit", function (event) {
    var file = input.files[0];
    if (!check(file)) { event.preventDefault(); return; }
    event.preventDefault();
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) bar.style.width = Math.round((e.loaded / e.total) * 100) + "%";
    });
    request.addEventListener("load", function () {
      if (request.status === 200 && request.responseURL && request.responseURL !== form.action) {
        window.location.assign(request.responseURL);
        return;
      }
      // An error page: show its message here instead of leaving the page.
      var page = new DOMParser().parseFromString(request.responseText, "text/html");
      var message = page.querySelector(".message.error, .panel.error p:not(.status-code)");
      showError(message ? message.textContent.trim() : form.dataset.msgFailed);
      progress.hidden = true;
      button.disabled = false;
    });
    request.addEventListener("error", function () {
      showError(form.dataset.msgFailed);
      progress.hidden = true;
      button.disabled = false;
    });
    progress.hidden = false;
    bar.style.width = "0%";
    button.disabled = true;
    button.textContent = form.dataset.msgUploading;
    request.send(new FormData(form));
  });
})();
