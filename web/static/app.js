// Small behaviours the admin needs beyond htmx: toasts, copy buttons, select-all, the tag palette
// and confirmations on submit buttons. No inline scripts anywhere, so the CSP can stay 'self'.
(function () {
  "use strict";

  function toast(message, isError) {
    var box = document.getElementById("toasts");
    if (!box || !message) { return; }
    var item = document.createElement("div");
    item.className = "toast" + (isError ? " error" : "");
    item.setAttribute("role", isError ? "alert" : "status");
    item.textContent = message;
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 4000);
  }

  function textOf(html) {
    var doc = new DOMParser().parseFromString(html || "", "text/html");
    return (doc.body.textContent || "").trim();
  }

  function copy(text) {
    return navigator.clipboard.writeText(text).then(
      function () { toast("Copied to the clipboard."); },
      function () { toast("The browser refused clipboard access.", true); }
    );
  }

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) { return; }
    var confirmButton = target.closest("button[data-confirm]");
    if (confirmButton && !window.confirm(confirmButton.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopPropagation();
      return;
    }
    var fetchCopy = target.closest("[data-copy-url]");
    if (fetchCopy) {
      fetch(fetchCopy.getAttribute("data-copy-url"), { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { if (!r.ok) { throw new Error(r.statusText); } return r.text(); })
        .then(copy)
        .catch(function () { toast("Could not fetch the token.", true); });
      return;
    }
    var localCopy = target.closest("[data-copy-from]");
    if (localCopy) {
      var source = document.getElementById(localCopy.getAttribute("data-copy-from"));
      if (source) { copy(source.textContent.trim()); }
      return;
    }
    var chip = target.closest("[data-tag]");
    if (chip) {
      var input = document.getElementById(chip.getAttribute("data-target"));
      if (input) {
        var tags = input.value.split(",").map(function (t) { return t.trim(); }).filter(Boolean);
        var tag = chip.getAttribute("data-tag");
        if (tags.indexOf(tag) < 0) { tags.push(tag); }
        input.value = tags.join(", ");
      }
    }
  }, true);

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box instanceof HTMLInputElement && box.hasAttribute("data-select-all")) {
      document.querySelectorAll('input[name="ids"]').forEach(function (cb) { cb.checked = box.checked; });
    }
  });

  // A form marked data-reset-on-success empties itself once the server accepted it (the add form:
  // a file left selected would otherwise be sent again with the next paste).
  document.body.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (event.detail.successful && elt instanceof HTMLFormElement && elt.hasAttribute("data-reset-on-success")) {
      elt.reset();
    }
  });

  document.body.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    toast(textOf(xhr.responseText) || ("Request failed (" + xhr.status + ")."), true);
  });
  document.body.addEventListener("htmx:sendError", function () {
    toast("The gateway did not answer; is it running?", true);
  });
})();
