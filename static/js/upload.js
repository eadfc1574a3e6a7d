// Upload page: take a photo from the file picker, a drop or the clipboard, check it here before a
// byte is sent, send it with a progress bar and follow the server to the job page.
// Without JavaScript the form posts normally and the server gives the same answers.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) return;
  var input = document.getElementById("id_image");
  var dropzone = document.getElementById("dropzone");
  var chosen = document.getElementById("chosen");
  var chosenThumb = document.getElementById("chosen-thumb");
  var chosenName = document.getElementById("chosen-name");
  var errorBox = document.getElementById("client-error");
  var progress = document.getElementById("upload-progress");
  var bar = document.getElementById("upload-bar");
  var progressState = document.getElementById("upload-state");
  var button = document.getElementById("upload-button");
  var buttonLabel = button.textContent;
  var maxBytes = parseInt(form.dataset.maxBytes, 10);
  var accepted = ["image/jpeg", "image/png", "image/webp"];
  var acceptedExtensions = /\.(jpe?g|png|webp)$/i;
  var thumbUrl = null;

  function showError(text) {
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  // "GIF", "HEIC", "TIFF"… for the message: from the type the browser reports, else the extension.
  function kindOf(file) {
    var subtype = (file.type.split("/")[1] || "").replace(/^x-/, "");
    if (!subtype) subtype = (file.name.split(".").pop() || "");
    return subtype.toUpperCase() || "?";
  }

  function problemWith(file) {
    if (!file) return form.dataset.msgEmpty;
    var typeOk = file.type ? accepted.indexOf(file.type) !== -1 : acceptedExtensions.test(file.name);
    if (!typeOk) {
      var kind = kindOf(file);
      var message = form.dataset.msgType.replace("{kind}", kind);
      if (kind === "HEIC" || kind === "HEIF") message += " " + form.dataset.msgIphone;
      return message;
    }
    if (file.size > maxBytes) return form.dataset.msgSize;
    if (file.size === 0) return form.dataset.msgEmpty;
    return "";
  }

  function humanSize(bytes) {
    if (bytes >= 1024 * 1024) return (bytes / (1024 * 1024)).toFixed(1) + " MB";
    return Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  function showChosen(file) {
    if (thumbUrl) URL.revokeObjectURL(thumbUrl);
    thumbUrl = null;
    if (!file) {
      chosen.hidden = true;
      return;
    }
    thumbUrl = URL.createObjectURL(file);
    chosenThumb.src = thumbUrl;
    chosenName.textContent = form.dataset.msgChosen + " " + (file.name || "") + " (" + humanSize(file.size) + ")";
    chosen.hidden = false;
  }

  // One place for every way a photo arrives: check it, then make it the form's file.
  function take(file) {
    var problem = problemWith(file);
    showError(problem);
    if (problem) {
      input.value = "";
      showChosen(null);
      return;
    }
    if (file !== input.files[0]) {
      var transfer = new DataTransfer();
      transfer.items.add(file);
      input.files = transfer.files;
    }
    showChosen(file);
  }

  input.addEventListener("change", function () {
    if (input.files.length) take(input.files[0]);
    else showChosen(null);
  });

  // A photo dropped anywhere on the page is taken; otherwise the browser would open it and the
  // visitor would leave the site.
  function isFileDrag(event) {
    return event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types || [], "Files") !== -1;
  }
  ["dragenter", "dragover"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      if (!isFileDrag(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      dropzone.classList.add("dragging");
    });
  });
  document.addEventListener("dragleave", function (event) {
    if (event.relatedTarget === null || !document.documentElement.contains(event.relatedTarget)) {
      dropzone.classList.remove("dragging");
    }
  });
  document.addEventListener("drop", function (event) {
    dropzone.classList.remove("dragging");
    if (!isFileDrag(event)) return;
    event.preventDefault();
    if (event.dataTransfer.files.length) take(event.dataTransfer.files[0]);
  });

  document.addEventListener("paste", function (event) {
    var files = (event.clipboardData && event.clipboardData.files) || [];
    for (var i = 0; i < files.length; i++) {
      if (files[i].type.indexOf("image/") === 0) {
        event.preventDefault();
        take(files[i]);
        return;
      }
    }
  });

  function resetButton() {
    progress.hidden = true;
    button.disabled = false;
    button.textContent = buttonLabel;
  }

  // The server answered with a page instead of a redirect: show its message here.
  function serverMessage(html) {
    var page = new DOMParser().parseFromString(html || "", "text/html");
    var message = page.querySelector("#error-message, .upload [role=alert]");
    return message ? message.textContent.replace(/\s+/g, " ").trim() : "";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (button.disabled) return;
    var problem = problemWith(input.files[0]);
    showError(problem);
    if (problem) {
      input.focus();
      return;
    }
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    });
    request.upload.addEventListener("load", function () {
      bar.value = 100;
      progressState.textContent = form.dataset.msgChecking;
    });
    request.addEventListener("load", function () {
      var landed = request.responseURL ? new URL(request.responseURL) : null;
      if (request.status === 200 && landed && /\/jobs\/[^/]+\/$/.test(landed.pathname)) {
        window.location.assign(landed.href);
        return;
      }
      showError(serverMessage(request.responseText) || form.dataset.msgFailed);
      resetButton();
    });
    request.addEventListener("error", function () {
      showError(form.dataset.msgFailed);
      resetButton();
    });
    bar.value = 0;
    progressState.textContent = form.dataset.msgUploading;
    progress.hidden = false;
    button.disabled = true;
    button.textContent = form.dataset.msgUploading;
    request.send(new FormData(form));
  });

  // Picking an ID photo size means the ID photo tool.
  var spec = document.getElementById("id_spec");
  var idPhoto = document.getElementById("id_mode_idphoto");
  if (spec && idPhoto) spec.addEventListener("change", function () { idPhoto.checked = true; });

  // Coming back with the browser's back button may restore a chosen file: show it.
  if (input.files.length) take(input.files[0]);
})();
