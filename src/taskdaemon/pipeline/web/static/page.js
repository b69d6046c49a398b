// taskdaemon web page: what both pages share (text made safe to show, attributes and texts
// written when they change, times, durations, sizes, state pills, JSON posts). Loaded before
// the other scripts (base.html), which take these from window.taskdaemonPage.
"use strict";

window.taskdaemonPage = (function () {
  // Bidirectional embeddings, overrides and isolates (U+202A-202E, U+2066-2069) reorder the
  // text after them ("x \u202eevil" reads "x live"), and zero-width characters hide in it
  // (U+200B-200F, U+2060-2064, U+FEFF, U+061C, U+180E): written as escapes, as the terminal
  // writes them (terminal_text.UNSEEN_ESCAPES) and the server's first rendering does
  // (_pages._shown).
  const UNSEEN = /[\u202a-\u202e\u2066-\u2069\u200b-\u200f\u2060-\u2064\ufeff\u061c\u180e]/g;
  function visible(text) {
    return String(text).replace(UNSEEN, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
  }

  // A run id the page links to (_views.is_run_id).
  const RUN_ID = /^[0-9a-f]{32}$/;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined && value !== false) node.setAttribute(key, value);
    }
    if (text !== undefined && text !== null) node.textContent = visible(text);
    return node;
  }

  // An attribute and a text written only when they change: a page updated in place at every
  // live event leaves what stays as it is (no layout, no screen reader told of it again).
  function setAttr(node, name, value) {
    if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  }

  function setText(node, text) {
    const shown = visible(text);
    if (node.textContent !== shown) node.textContent = shown;
  }

  // Python's round() of a number not below zero: a half goes to the even neighbour, where
  // Math.round takes it up. The server writes a page's first figures in Python, and the
  // CLI all of them: 12.5 ms read "12ms" there and "13ms" here, 1.25 MiB "1.2MiB" and "1.3".
  function roundEven(x) {
    const up = Math.round(x);
    return up - x === 0.5 && up % 2 === 1 ? up - 1 : up;
  }

  // durations.format_duration, as the terminal writes them: each unit is chosen by the value
  // rounded to its precision, so 0.9996 s is 1.0s (not 1000ms) and 59.96 s 1m00s (not 60.0s).
  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    const s = Math.max(0, seconds);
    const millis = roundEven(s * 1000);
    if (millis < 1000) return millis + "ms";
    const tenths = roundEven(s * 10);
    if (tenths < 600) return (tenths / 10).toFixed(1) + "s";
    const whole = roundEven(s);
    if (whole < 3600) return Math.floor(whole / 60) + "m" + String(whole % 60).padStart(2, "0") + "s";
    return Math.floor(whole / 3600) + "h" + String(Math.floor((whole % 3600) / 60)).padStart(2, "0") + "m";
  }

  function fmtTime(epoch) {
    if (epoch === null || epoch === undefined) return "-";
    const d = new Date(epoch * 1000);
    const pad = (n) => String(n).padStart(2, "0");
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  // Times the server wrote (its own zone) are rewritten in the browser's, as fmtTime
  // writes every other one: a row the refresh redraws must not jump by the zones' offset.
  function localizeTimes() {
    for (const node of document.querySelectorAll("time[datetime]")) {
      const epoch = Date.parse(node.dateTime);
      if (!Number.isNaN(epoch)) node.textContent = fmtTime(epoch / 1000);
    }
    // Said once, in the header: which zone every time on the page is in.
    const zone = document.getElementById("time-zone");
    if (zone) zone.textContent = "Times in your browser's zone: " + zoneName();
  }

  function zoneName() {
    const east = -new Date().getTimezoneOffset();
    const pad = (n) => String(n).padStart(2, "0");
    const offset = "UTC" + (east < 0 ? "-" : "+") + pad(Math.floor(Math.abs(east) / 60)) + ":" + pad(Math.abs(east) % 60);
    let name = "";
    try { name = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { name = ""; }
    return name ? name + " (" + offset + ")" : offset;
  }

  // byte_sizes.format_bytes, as runs show and the report write a size: no space before the
  // unit (the page wrote "3.4 MiB" beside their "3.4MiB"), one decimal rounded as Python's
  // format does. A size's only exact halves of a tenth are its quarters (n.25, n.75: a
  // fourth of it is a whole odd number, found exactly), which toFixed rounds up.
  function fmtBytes(value) {
    if (value === null || value === undefined) return "-";
    let size = value;
    for (const unit of ["B", "KiB", "MiB", "GiB"]) {
      if (size < 1024 || unit === "GiB") {
        if (unit === "B") return Math.round(size) + unit;
        const tenth = size * 4 % 2 === 1 ? roundEven(size * 10) / 10 : size;
        return tenth.toFixed(1) + unit;
      }
      size /= 1024;
    }
    return String(value);
  }

  // A stages table cell shows an error's first CELL characters (a row stays one row); the
  // stage panel shows it whole. The server's first rendering cuts alike (_pages._cell).
  const CELL = 200;
  function cellText(text) {
    return text.length <= CELL ? text : text.slice(0, CELL - 1) + "\u2026";
  }

  // A label's parts ("failure", "3 attempts", "4.5s") are each kept on a line, so a narrow
  // State column wraps a pill between them, never inside one (as the server's first rendering).
  function statePill(state, label) {
    const pill = el("span", { class: "state state-" + state });
    const parts = String(label || state).split(" \u00b7 ");
    parts.forEach((part, i) => {
      if (i > 0) pill.append(" ");
      pill.append(el("span", { class: "part" }, i < parts.length - 1 ? part + " \u00b7" : part));
    });
    return pill;
  }

  async function postJson(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
    let answer = {};
    try { answer = await response.json(); } catch (e) { answer = {}; }
    return { ok: response.ok, status: response.status, answer: answer };
  }

  // A 401 to a page that was signed in: its server was restarted (a session cookie dies with
  // the process that signed it). The API's error tells a client to send a header; a person at
  // a browser signs in again, and the page goes on with the new cookie (shared by its tabs).
  function signInAgain() {
    return "The server no longer accepts this page's session (it was restarted?). Sign in again at " +
      window.location.origin + "/?token=TOKEN (TASKDAEMON_API_TOKEN, or the api-token.PORT or " +
      "ui-token.PORT file the server wrote under TASKDAEMON_HOME): this page then goes on by itself.";
  }

  return {
    visible, RUN_ID, el, setAttr, setText, fmtDuration, fmtTime, localizeTimes, fmtBytes,
    cellText, statePill, postJson, signInAgain,
  };
})();
