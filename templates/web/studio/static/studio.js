// The studio's only script: a live preview while the therapist types, preview tabs, and
// frames that fit a phone. Everything works without it (the preview then updates on save).
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // Email frames: as tall as their content, scaled down when the column is narrower.
  function fit(frame) {
    var box = frame.parentElement;
    var width = parseInt(box.getAttribute("data-width"), 10) || frame.width;
    var scale = Math.min(1, box.clientWidth / width);
    frame.style.width = width + "px";
    frame.style.transform = scale < 1 ? "scale(" + scale + ")" : "";
    try {
      var root = frame.contentDocument.documentElement;
      frame.style.height = "60px";
      var height = root.scrollHeight + 16;
      frame.style.height = height + "px";
      box.style.height = Math.ceil(height * scale) + 2 + "px";
    } catch (e) { /* not measurable: keep the default height */ }
  }
  var frames = document.querySelectorAll(".frame-box iframe");
  frames.forEach(function (frame) {
    frame.addEventListener("load", function () { fit(frame); });
    if (frame.contentDocument && frame.contentDocument.readyState === "complete") fit(frame);
  });
  window.addEventListener("resize", function () { frames.forEach(fit); });

  // Tabs: phone, desktop, plain text (all shown when there is no script).
  var tabs = document.querySelector(".tabs");
  function show(name) {
    document.querySelectorAll(".tabs button").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-show") === name));
    });
    ["phone", "desktop", "text"].forEach(function (panel) {
      var el = document.querySelector('.panel[data-panel="' + panel + '"]');
      if (el) el.hidden = panel !== name;
    });
    frames.forEach(fit);
  }
  if (tabs) {
    tabs.hidden = false;
    tabs.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-show]");
      if (button) show(button.getAttribute("data-show"));
    });
    show("phone");
  }

  // A body problem's "Line N" selects that line of the text.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-line]");
    var body = document.getElementById("body");
    if (!link || !body) return;
    event.preventDefault();
    var line = parseInt(link.getAttribute("data-line"), 10);
    var lines = body.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
    body.focus();
    body.setSelectionRange(start, start + (lines[line - 1] || "").length);
  });

  var form = document.getElementById("editor");
  if (!form || !form.getAttribute("data-preview")) return;
  var status = document.getElementById("preview-status");
  var timer = null;
  var sequence = 0;

  function text(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = value || "";
  }

  function problemList(problems, field) {
    var box = document.querySelector('[data-field="' + field + '"]');
    if (!box) return;
    box.textContent = "";
    var mine = problems.filter(function (p) { return (p.field || null) === (field === "body" ? null : field); });
    var input = document.getElementById(field);
    if (input && field !== "body") {
      var bad = mine.some(function (p) { return p.severity === "error"; });
      if (bad) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    }
    if (!mine.length) return;
    var holder = box;
    if (field === "body") { holder = document.createElement("ul"); holder.className = "problems"; box.appendChild(holder); }
    mine.forEach(function (p) {
      var item = document.createElement(field === "body" ? "li" : "p");
      item.className = "problem " + p.severity;
      if (field === "body" && p.body_line) {
        var a = document.createElement("a");
        a.href = "#body"; a.className = "where"; a.setAttribute("data-line", p.body_line);
        a.textContent = "Line " + p.body_line;
        item.appendChild(a);
        item.appendChild(document.createTextNode(": "));
      }
      item.appendChild(document.createTextNode((p.severity === "warning" ? "Warning: " : "") + p.message));
      holder.appendChild(item);
    });
  }

  function update(data) {
    text("lock-from", data.from_name);
    text("lock-subject", data.subject);
    text("lock-preheader", data.preheader);
    var error = document.getElementById("preview-error");
    if (error) { error.hidden = !data.error; error.textContent = data.error || ""; }
    if (data.html) frames.forEach(function (frame) { frame.srcdoc = data.html; });
    if (data.text !== null && data.text !== undefined) text("preview-text", data.text);
    var problems = data.problems || [];
    ["subject", "preheader", "delay", "send_at", "not_after", "from_name", "body"].forEach(function (f) {
      problemList(problems, f);
    });
    var lock = document.getElementById("p-lock");
    if (lock) {
      lock.textContent = "";
      problems.filter(function (p) {
        return ["subject", "preheader", "from_name"].indexOf(p.field) >= 0 && p.message.indexOf("lock screen") >= 0;
      }).forEach(function (p) {
        var item = document.createElement("p"); item.className = "problem"; item.textContent = p.message; lock.appendChild(item);
      });
    }
    if (status) {
      status.textContent = data.blocking
        ? data.blocking + (data.blocking === 1 ? " problem" : " problems") + " to fix before saving."
        : "Preview up to date.";
    }
  }

  function refresh() {
    var mine = ++sequence;
    var body = new URLSearchParams(new FormData(form));
    if (status) status.textContent = "Updating the preview…";
    fetch(form.getAttribute("data-preview"), {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) throw new Error(String(response.status));
      return response.json();
    }).then(function (data) {
      if (mine === sequence) update(data);
    }).catch(function () {
      if (mine === sequence && status) status.textContent = "The preview could not be updated; saving still checks everything.";
    });
  }

  form.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 450);
  });
})();
