// taskdaemon web page. No framework, no build step; loaded from /static under a CSP that
// forbids inline script. Text reaches the page through textContent only, never innerHTML.
// The run page: its state from the live stream, the DAG, the stages table, the lines at its
// top and the stage panel's picking. What each part draws by itself is a script of its own,
// loaded before this one (base.html): page.js (what every page shares), runs.js (the runs
// list), timeline.js, stage_logs.js, stage_detail.js (the stage panel's records and facts) and
// deltas.js (the stream's deltas).
"use strict";

(function () {
  const {
    visible, el, setAttr, setText, fmtDuration, fmtTime, localizeTimes, cellText, statePill,
    postJson, signInAgain,
  } = window.taskdaemonPage;

  // --- the run page ----------------------------------------------------------------------

  function runPage() {
    const body = document.body;
    const runId = body.dataset.runId;
    let state = null;
    let selected = null;
    let drawnKey = null;
    let drawing = false;
    let drawnAt = -Infinity;
    let drawTimer = null;
    let detailKey = null;
    let detailAsked = 0;
    const note = document.getElementById("stream-note");

    // The DAG is laid out again (a `dot` run on the server, seconds for thousands of stages)
    // only when what its layout shows changes: the stages, their states and attempts, the
    // run's status. Durations in the labels tick at every event and wait for the next such
    // change. A DAG of more than BIG_DAG stages is redrawn at most every REDRAW_MS (its last
    // state always drawn); one of more than MAX_DRAWN is not drawn at all: fit into the page it
    // is specks, and its drawing is megabytes (docs/web.md, "The DAG drawing").
    const BIG_DAG = 100;
    const REDRAW_MS = 10000;
    const MAX_DRAWN = 500;
    const ENDED = new Set(["success", "failure", "cancelled", "interrupted"]);
    // What the page says of the whole run is counted as the stream's deltas change it
    // (deltas.js): an event's work is the size of what it changed, not of the run.
    const deltas = window.taskdaemonDeltas;
    const drawKey = deltas.layout;
    const offers = (s) => deltas.tally(s).approvable.size + deltas.tally(s).resumable.size > 0;

    // The DAG: Graphviz SVG fetched from the API, cleaned, then inserted as DOM nodes.
    function clean(svg) {
      for (const bad of svg.querySelectorAll("script, foreignObject, iframe, object, embed")) bad.remove();
      for (const node of svg.querySelectorAll("*")) {
        for (const attr of Array.from(node.attributes)) {
          const name = attr.name.toLowerCase();
          if (name.startsWith("on")) node.removeAttribute(attr.name);
          if ((name === "href" || name === "xlink:href") && !attr.value.startsWith("#")) node.removeAttribute(attr.name);
        }
      }
    }

    // SVG nodes carry the state their drawing shows (the drawing may lag the table a moment).
    let drawnNodes = [];

    function markNodes() {
      if (!state) return;
      const byName = new Map(drawnNodes.map((n) => [n.name, n]));
      for (const group of document.querySelectorAll("#dag g.node")) {
        const title = group.querySelector("title");
        const node = title ? byName.get(title.textContent) : undefined;
        if (!node) continue;
        setAttr(group, "data-stage", node.name);
        setAttr(group, "data-state", node.state);
        group.classList.toggle("selected", node.name === selected);
      }
    }

    // Fit (pressed, the default): the whole drawing in its box, the panel's width and the
    // box's greatest height (80% of the window), never larger than drawn; but never below
    // MIN_SCALE, where its labels can no longer be read: then it is shown at that scale,
    // scrolling in its box, and a note says so. Not pressed: the drawing at its size
    // (docs/web.md, "The DAG drawing"). No drawing (not yet, too big, failed): no button.
    const MIN_SCALE = 0.5;
    const fitButton = document.getElementById("dag-fit");
    const dagNote = document.getElementById("dag-note");
    let fitChosen = true;

    function fitDag() {
      const container = document.getElementById("dag");
      const svg = container.querySelector("svg");
      fitButton.parentElement.hidden = !svg;
      container.classList.toggle("fit", fitChosen);
      fitButton.setAttribute("aria-pressed", String(fitChosen));
      let scale = 1;
      if (svg && fitChosen) {
        const width = svg.width.baseVal.value;
        const height = svg.height.baseVal.value;
        const room = parseFloat(window.getComputedStyle(container).maxHeight);
        scale = Math.max(MIN_SCALE, Math.min(1, container.clientWidth / width, room / height));
        container.style.setProperty("--dag-width", Math.floor(width * scale) + "px");
        container.style.setProperty("--dag-height", Math.floor(height * scale) + "px");
      }
      dagNote.hidden = !(svg && fitChosen && scale === MIN_SCALE);
      showFocus();
    }

    // A drawing larger than its box opens on the stage to look at, centred where it can be,
    // not on its top left corner (whitespace in a fan-out's drawing): one the reader can
    // approve or one paused (both hold the run), else one that failed, else one running, else
    // the first stage. It is brought back at each drawing and fit until the reader moves the
    // box (docs/web.md, "The DAG drawing").
    const FOCUS = [(n) => n.approvable || n.state === "paused", (n) => n.state === "failure" || n.state === "timeout",
      (n) => n.state === "running" || n.state === "retrying", () => true];
    let boxMoved = false;
    for (const kind of ["wheel", "pointerdown", "keydown", "touchstart"]) {
      document.getElementById("dag").addEventListener(kind, () => { boxMoved = true; }, { passive: true });
    }

    function showFocus() {
      const container = document.getElementById("dag");
      if (boxMoved || !state) return;
      const node = FOCUS.map((want) => drawnNodes.find(want)).find((n) => n);
      const group = node && container.querySelector('g.node[data-stage="' + CSS.escape(node.name) + '"]');
      if (!group) return;
      const shape = group.getBoundingClientRect();
      const box = container.getBoundingClientRect();
      container.scrollLeft += shape.left + shape.width / 2 - (box.left + container.clientLeft + container.clientWidth / 2);
      container.scrollTop += shape.top + shape.height / 2 - (box.top + container.clientTop + container.clientHeight / 2);
    }

    fitButton.addEventListener("click", () => {
      fitChosen = !fitChosen;
      fitDag();
    });
    window.addEventListener("resize", fitDag);

    function wantDraw() {
      const container = document.getElementById("dag");
      // A run's end is drawn at once: the last drawing would show it running for 10 s more.
      const ended = state !== null && ENDED.has(state.run.status);
      if (ended && drawTimer !== null) { window.clearTimeout(drawTimer); drawTimer = null; }
      if (!state || drawing || drawTimer !== null || drawKey(state) === drawnKey) return;
      if (state.nodes.length > MAX_DRAWN) {
        drawnKey = drawKey(state);
        drawnNodes = [];
        container.dataset.dagState = "too-big";
        const said = el("p", { class: "muted too-big" },
          state.nodes.length.toLocaleString("en-US") + " stages: too many to draw readably here (the page draws up to " +
          MAX_DRAWN + "). The stages table lists each with its state; ");
        said.append(el("code", null, "taskdaemon dag --run " + runId + " --format svg -o dag.svg"), " draws the whole DAG.");
        container.replaceChildren(said);
        fitDag();
        laidOut();
        return;
      }
      const wait = state.nodes.length > BIG_DAG && !ended ? drawnAt + REDRAW_MS - Date.now() : 0;
      if (wait > 0) {
        container.dataset.dagState = "waiting";
        drawTimer = window.setTimeout(() => { drawTimer = null; wantDraw(); }, wait);
        return;
      }
      drawDag();
    }

    // A drawing asked for when the server was gone: `run --serve` stops its server as its run
    // ends, often before a big DAG's last drawing is made. Once the run has ended, the old
    // drawing is dimmed and the note says the table, not the drawing, shows the end.
    let drawingLost = false;
    function sayDrawingLost() {
      const ended = body.dataset.streamState === "ended";
      document.getElementById("dag").classList.toggle("stale", ended);
      note.textContent = ended
        ? "The run has ended and its server with it, before the DAG of its end was drawn: the dimmed drawing shows an earlier state; the stages table shows the end."
        : "The server is unreachable; the drawing may be out of date.";
    }

    // The stages table is shown once what lies above it is in: the first state (the lines at
    // the top, the timeline's rows), then the DAG (drawn, too big to draw, or failed). Each
    // moved the table down the page while it loaded, so a row clicked then was another stage
    // by the time the press landed. A drawing later than LAYOUT_MS does not hide the table
    // longer: the DAG's box then keeps the greatest height fit gives it (80% of the window),
    // so the drawing, whenever it comes, moves nothing under it (docs/web.md, "Pages").
    const LAYOUT_MS = 5000;
    function laidOut() {
      if (body.dataset.layout === "pending") body.dataset.layout = "done";
    }
    window.setTimeout(() => {
      if (body.dataset.layout !== "pending") return;
      const container = document.getElementById("dag");
      if (!["drawn", "too-big", "failed"].includes(container.dataset.dagState)) container.classList.add("reserved");
      laidOut();
    }, LAYOUT_MS);

    async function drawDag() {
      drawing = true;
      const container = document.getElementById("dag");
      container.dataset.dagState = "drawing";
      // A failed drawing is not asked again before the next change: the key counts as drawn.
      const key = drawKey(state);
      const nodes = state.nodes.slice();  // deltas change state.nodes in place
      drawnKey = key;
      try {
        let response;
        try {
          response = await fetch(body.dataset.dag, { credentials: "same-origin" });
        } catch (error) {  // the server is gone (a run --serve process ends with its run)
          container.dataset.dagState = "failed";
          drawingLost = true;
          sayDrawingLost();
          return;
        }
        if (!response.ok) {
          let message = "HTTP " + response.status;
          try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
          container.replaceChildren(el("p", { class: "error" }, "Cannot draw the DAG: " + message));
          fitDag();
          container.dataset.dagState = "failed";
          return;
        }
        const text = await response.text();
        const doc = new DOMParser().parseFromString(text, "image/svg+xml");
        const svg = doc.documentElement;
        if (svg.nodeName !== "svg") { container.dataset.dagState = "failed"; return; }
        clean(svg);
        // The figure says in words what the drawing shows (sayDag), and is kept true at each
        // update; the drawing, of when it was drawn, is not read out besides.
        svg.setAttribute("aria-hidden", "true");
        container.replaceChildren(document.importNode(svg, true));
        drawingLost = false;
        container.classList.remove("stale");
        drawnNodes = nodes;
        markNodes();
        fitDag();
        container.dataset.dagState = "drawn";
      } finally {
        drawing = false;
        drawnAt = Date.now();
        laidOut();
        wantDraw();
      }
    }

    const renderTimeline = window.taskdaemonTimeline(document.getElementById("timeline"));

    // Each button names its stage to a screen reader ("Approve release"): Tab reaches it
    // out of its row, where "Approve" alone does not say which of the waiting stages it is.
    function approvalButtons(box, node) {
      const approve = el("button", { type: "button", class: "approve", "data-action": "approve", "aria-label": "Approve " + visible(node.name) }, "Approve");
      const reject = el("button", { type: "button", class: "reject", "data-action": "reject", "aria-label": "Reject " + visible(node.name) }, "Reject");
      approve.addEventListener("click", (event) => command(node.name, "approve", { comment: "approved from the web page" }, box, event));
      reject.addEventListener("click", (event) => command(node.name, "reject", { reason: "rejected from the web page" }, box, event));
      box.append(approve, reject);
    }

    // A paused stage's Continue and Step ("Continue build"), in its row and in its line at the
    // top; and Retry when it is paused at its failure: a new attempt at once, the fix a
    // developer made in between picked up (the prompt's `retry`, which the page lacked).
    function resumeButtons(box, node) {
      for (const action of node.retryable ? ["continue", "step", "retry"] : ["continue", "step"]) {
        const word = action === "continue" ? "Continue" : action === "step" ? "Step" : "Retry";
        const button = el("button", { type: "button", "data-action": action, "aria-label": word + " " + visible(node.name) }, word);
        button.addEventListener("click", (event) => command(node.name, action, { stage: node.name }, box, event));
        box.append(button);
      }
    }

    function fillActions(cell, node) {
      cell.replaceChildren();
      if (node.approvable) approvalButtons(cell, node);
      if (node.resumable) resumeButtons(cell, node);
    }

    // `cell`: the buttons' box, a stages table cell or a stage's line at the top of the page;
    // `event`: the button's click.
    async function command(stage, action, payload, cell, event) {
      // A button disabled while it has the keyboard focus drops it to the page's top, and Tab
      // went on from there: the focus goes to the stage's name in the table first, where the
      // table keeps it once the action is gone. Pressed from the keyboard (a click of detail
      // 0), the page scrolls to it: on a phone the name was a screen below the line at the
      // top, and the focus out of sight. A pointer's press leaves the page where it is.
      if (cell.contains(document.activeElement)) stageRows.get(stage).pick.focus({ preventScroll: event.detail > 0 });
      for (const button of cell.querySelectorAll("button")) button.disabled = true;
      const base = "/api/runs/" + encodeURIComponent(runId);
      const url = action === "approve" || action === "reject"
        ? base + "/" + action + "/" + encodeURIComponent(stage)
        : base + "/debug/" + action;
      const result = await postJson(url, payload);
      const message = result.ok ? action + " sent" : (result.answer.error || ("HTTP " + result.status));
      cell.appendChild(el("span", { class: result.ok ? "muted sent" : "error" }, " " + message));
      if (!result.ok) for (const button of cell.querySelectorAll("button")) button.disabled = false;
    }

    // The stages table is updated in place: one row per stage, kept from event to event, its
    // cells written only when they change. Drawn anew at every event (several a second on a
    // busy run), a button was swapped between a press and its release, so the click was lost,
    // and the keyboard focus fell back to the top of the page.
    const stageRows = new Map();

    // The server drew the table before the first state arrived: its rows are taken over, not
    // drawn anew, so a button pressed while that state arrives is the one the page keeps.
    let servedRows = null;
    function servedRow(name) {
      if (servedRows === null) {
        servedRows = new Map();
        for (const tr of document.querySelectorAll("#stages tbody tr[data-stage]")) {
          const pick = tr.cells.length === 6 ? tr.cells[0].querySelector("button.select") : null;
          if (pick) servedRows.set(tr.dataset.stage, { tr: tr, pick: pick, state: tr.cells[1], actions: tr.cells[2],
            instances: tr.cells[3], attempts: tr.cells[4], error: tr.cells[5] });
        }
      }
      const row = servedRows.get(name);
      servedRows.delete(name);
      return row;
    }

    function stageRow(node) {
      let row = stageRows.get(node.name) || servedRow(node.name);
      if (row && !stageRows.has(node.name)) stageRows.set(node.name, row);
      if (!row) {
        const pick = el("button", { type: "button", class: "link select" });
        pick.addEventListener("click", () => select(node.name));
        const first = el("td");
        first.appendChild(pick);
        row = { tr: el("tr", { "data-stage": node.name }), pick: pick, state: el("td"), instances: el("td"),
          attempts: el("td"), error: el("td", { class: "error-cell" }), actions: el("td", { class: "actions" }) };
        row.tr.append(first, row.state, row.actions, row.instances, row.attempts, row.error);
        stageRows.set(node.name, row);
      }
      if (row.tr.dataset.state !== node.state) row.tr.dataset.state = node.state;
      row.tr.classList.toggle("selected", node.name === selected);
      setText(row.pick, node.name);
      const pill = node.state + "\u0000" + node.label;
      if (row.pill !== pill) { row.pill = pill; row.state.replaceChildren(statePill(node.state, node.label)); }
      // A stage that has not run has no count ("-"), as runs show and run's summary say.
      setText(row.instances, node.instances || "-");
      setText(row.attempts, node.attempts || "-");
      setText(row.error, cellText(node.error || node.skip_reason || ""));
      // The actions change with the stage's state only; a focus on one that is gone (a stage
      // approved, resumed) moves to the next one offered, else to the stage's name.
      const offered = (node.approvable ? "approve " : "") + (node.resumable ? "resume" : "") + (node.retryable ? " retry" : "");
      if (row.offered !== offered) {
        const focused = row.actions.contains(document.activeElement);
        row.offered = offered;
        fillActions(row.actions, node);
        if (focused) (row.actions.querySelector("button") || row.pick).focus({ preventScroll: true });
      }
      return row.tr;
    }

    function renderStages() {
      const rows = state.nodes.map(stageRow);
      const tbody = document.querySelector("#stages tbody");
      const kept = rows.length === tbody.children.length && rows.every((tr, i) => tbody.children[i] === tr);
      if (!kept) {
        tbody.replaceChildren(...rows);
        const names = new Set(state.nodes.map((n) => n.name));
        for (const name of Array.from(stageRows.keys())) if (!names.has(name)) stageRows.delete(name);
      }
      // No stage to approve or resume (an ended run, a read-only page): no empty Actions column.
      document.getElementById("stages").classList.toggle("no-actions", !offers(state));
    }

    function renderRun() {
      const run = state.run;
      const status = document.getElementById("run-status");
      status.className = "state state-" + run.status;
      status.textContent = run.status;
      document.getElementById("run-duration").textContent = run.duration;
      // "Type: message", as runs show writes a run's error and the stage panel an attempt's.
      const said = [run.error_type, run.error].filter(Boolean).join(": ");
      const error = document.getElementById("run-error");
      error.textContent = visible(said);
      error.hidden = !said;
      body.dataset.runStatus = run.status;
      document.getElementById("run-controls").hidden = deltas.tally(state).resumable.size === 0;
      // The stages this page can approve, said at the top (a live region, written when it
      // changes): their rows are below the fold of a long page, and the run only read
      // "running" meanwhile. Their buttons are there too (renderLinesAtTop).
      const approvable = deltas.nodesWhere(state, "approvable").map((n) => n.name);
      setText(document.getElementById("run-approvals"), approvable.length === 0 ? ""
        : "Waiting for your approval: " + approvable.join(", ") + ".");
      // A remote span source has had nothing new of this running run for a while (_data.py):
      // said, not decided, as `watch` says it; the next span clears it.
      const quiet = document.getElementById("run-quiet");
      const since = state.quiet_since;
      quiet.dataset.since = since === null ? "" : String(since);
      quiet.textContent = since === null ? "" : "No new span from the span source since " + fmtTime(since) +
        "; still waiting. A long stage or an approval sends none either, but the run's process may be gone: " +
        "a run whose process died never ends in this source.";
      quiet.hidden = since === null;
      // A remote span source ended the run without the span of a stage its run span names,
      // and the span did not come within the follower's wait (_data.py): said, as `watch`
      // says it, beside the stage shown skipped.
      const noSpan = document.getElementById("run-no-span");
      setText(noSpan, state.no_span || "");
      noSpan.hidden = !state.no_span;
    }

    // Each stage waiting for this page's approval, and each one paused in the debugger, has a
    // line at the top with its name and its buttons (Approve and Reject; Continue and Step): on
    // a phone the stages table's row scrolled sideways to reach them, below the fold, and the
    // narrow table now shows no Actions column at all. A line is kept from event to event, as
    // the table's rows are, so a press survives an update; when its stage no longer waits or
    // is paused, a focus in it goes to the stage's name in the table (the buttons' focus rule
    // in `command`).
    const approvalLines = new Map();
    const pausedLines = new Map();

    // `key`: what a line stands for; a line whose key changed (a pause become one at a failure,
    // which offers Retry) is made again.
    function renderLines(list, lines, nodes, fill, key = (node) => node.name) {
      const keys = new Set(nodes.map(key));
      for (const [held, line] of Array.from(lines)) {
        if (keys.has(held)) continue;
        if (line.contains(document.activeElement)) stageRows.get(line.dataset.stage)?.pick.focus({ preventScroll: true });
        lines.delete(held);
      }
      const wanted = nodes.map((node) => {
        let line = lines.get(key(node));
        if (!line) {
          line = el("li", { "data-stage": node.name });
          line.append(el("span", { class: "line-name" }, node.name), " ");
          fill(line, node);
          lines.set(key(node), line);
        }
        return line;
      });
      if (wanted.length !== list.children.length || wanted.some((line, i) => list.children[i] !== line)) list.replaceChildren(...wanted);
    }

    function renderLinesAtTop() {
      renderLines(document.getElementById("approval-buttons"), approvalLines, deltas.nodesWhere(state, "approvable"), approvalButtons);
      renderLines(document.getElementById("paused-buttons"), pausedLines, deltas.nodesWhere(state, "resumable"), resumeButtons, (n) => n.name + (n.retryable ? " retry" : ""));
    }

    document.getElementById("continue-run").addEventListener("click", async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      const result = await postJson("/api/runs/" + encodeURIComponent(runId) + "/debug/continue", {});
      if (!result.ok) note.textContent = "Continue failed: " + (result.answer.error || ("HTTP " + result.status));
      button.disabled = false;
    });

    // A stage may be picked in the table the server drew before the stream's first update
    // (state) has come: its row is marked in place, and its panel loads all the same.
    function select(name) {
      const changed = name !== selected;
      selected = name;
      detailKey = null;
      if (state) renderStages();
      else for (const row of document.querySelectorAll("#stages tbody tr")) row.classList.toggle("selected", row.dataset.stage === name);
      markNodes();
      loadDetail().then(() => { if (changed) reveal(); });
      if (changed) stageLogs.follow(name);
    }

    // A picked stage's panel is brought into the window when it is out of it: on a narrow
    // screen it sits below the whole stages table (a wide one keeps it beside the table).
    function reveal() {
      const panel = document.getElementById("stage-panel");
      const top = panel.getBoundingClientRect().top;
      if (top < 0 || top > window.innerHeight / 2) panel.scrollIntoView({ block: "start" });
    }

    const stageLogs = window.taskdaemonStageLogs(body);
    const stageDetail = window.taskdaemonStageDetail;

    async function loadDetail() {
      if (!selected) return;
      const node = state ? deltas.node(state, selected) : undefined;
      const key = selected + "\u0000" + (node ? node.label : "");
      if (key === detailKey) return;
      detailKey = key;
      // Answers can come out of order (a slow one for a stage picked before): only the
      // answer to the latest request fills the panel.
      const asked = ++detailAsked;
      const name = selected;
      const box = document.getElementById("stage-detail");
      document.getElementById("stage-hint").hidden = true;
      document.getElementById("stage-logs").hidden = false;
      document.getElementById("logs-command").textContent = "taskdaemon logs " + runId + " --stage " + selected;
      let response;
      try {
        // The selected stage's record only: the whole run's is megabytes for thousands of stages.
        response = await fetch(body.dataset.record + "?stage=" + encodeURIComponent(selected), { credentials: "same-origin" });
      } catch (error) {
        if (asked !== detailAsked) return;
        box.replaceChildren(el("p", { class: "error" }, "Cannot load the stage: the server is unreachable."));
        box.hidden = false;
        return;
      }
      // 404: the run has no record of the stage yet (nothing of it has started).
      if (!response.ok && response.status !== 404) { if (asked !== detailAsked) return; box.replaceChildren(el("p", { class: "error" }, "Cannot load the stage: HTTP " + response.status)); box.hidden = false; return; }
      const record = response.ok ? await response.json() : { stages: [] };
      if (asked !== detailAsked) return;
      const stage = record.stages.find((s) => s.name === name);
      let env = null;
      if (stageDetail.held(stage)) {
        env = await stageDetail.environment(runId, name);
        if (asked !== detailAsked) return;
      }
      box.replaceChildren(...stageDetail.parts(name, stage, env));
      box.hidden = false;
      sayPicked(name, stage);
    }

    // The stage panel is no live region: a screen reader read out all of it, and its log
    // records, at every log tail and every live event. A pick is said once, in a few words.
    let said = null;
    function sayPicked(name, stage) {
      if (said === name) return;
      said = name;
      document.getElementById("stage-said").textContent = "Stage " + name + ": " +
        (stage ? stage.status : "not started yet") + "; its details and logs are in the stage panel.";
    }

    // The DAG figure's name and description, as the server wrote them first (_views.dag_words):
    // the stage count and the run's status, then the stages in each state, in the legend's
    // order. Not a live region: a screen reader reads them when it comes to the figure.
    const legendStates = Array.from(document.querySelectorAll('.legend .swatch[class*="state-"]'), (s) => s.className.replace(/^.*state-/, ""));
    function sayDag() {
      const n = state.nodes.length;
      const run = state.run || {};
      setAttr(document.getElementById("dag"), "aria-label", visible("DAG of " + (run.pipeline || "the run") + ": " +
        n + (n === 1 ? " stage" : " stages") + ", run " + (run.status || "-")));
      const counts = deltas.tally(state).states;
      setText(document.getElementById("dag-said"), legendStates.filter((s) => counts.get(s)).map((s) => counts.get(s) + " " + s).join(", "));
    }

    // Between events the run's clock goes on: a stage that runs for minutes, or waits for an
    // approval, sends none, and the run's duration and the timeline's open bars stood still
    // at the last event's (a run waiting an hour for its approval read 1m09s all along). While
    // the stream is live, each second they are drawn again at the server's clock of the last
    // event plus the time since it came; the next event sets them right.
    const TICK_MS = 1000;
    let stateAt = 0;
    function tick() {
      if (!state || !state.run || ENDED.has(state.run.status) || body.dataset.streamState !== "open") return;
      if (performance.now() - stateAt < TICK_MS) return;  // an event has just drawn them
      const now = state.now + (performance.now() - stateAt) / 1000;
      setText(document.getElementById("run-duration"), fmtDuration(now - state.run.start));
      renderTimeline.tick(state.timeline, now);
    }
    window.setInterval(tick, TICK_MS);

    // A state is drawn whole; a delta's (web/_deltas.py) only where it names: the stage rows
    // and timeline rows it puts or drops, the run's line and the counts. A page of thousands
    // of stages touched every row at every event; now a change of one stage touches its rows.
    // Nothing drawn changes `state`: it is the last state as sent, kept for the next delta.
    function onState(data, delta) {
      state = data;
      stateAt = performance.now();
      sayDag();
      renderRun();
      const nodes = delta && delta.nodes;
      if (!delta || (nodes && (nodes.drop.length || nodes.put.some(([, n]) => !stageRows.has(n.name))))) {
        renderStages();
      } else {
        for (const [, node] of nodes ? nodes.put : []) stageRow(node);
        document.getElementById("stages").classList.toggle("no-actions", !offers(state));
      }
      renderLinesAtTop();
      if (delta) renderTimeline.change(state.timeline, delta.timeline && delta.timeline.rows);
      else renderTimeline(state.timeline);
      markNodes();
      wantDraw();
      if (selected) loadDetail();
    }

    for (const button of document.querySelectorAll("#stages button.select")) {
      button.addEventListener("click", () => select(button.closest("tr").dataset.stage));
    }
    document.getElementById("dag").addEventListener("click", (event) => {
      const group = event.target.closest ? event.target.closest("g.node[data-stage]") : null;
      if (group) select(group.getAttribute("data-stage"));
    });

    // The run's stream. The browser reconnects by itself after a dropped connection, but
    // gives up for good when the server answers with anything but a stream: a restarted
    // server refusing this page's session (401), one with too many streams (503). The page
    // then asks the server why, says so, and asks again until a stream is granted (signing
    // in again, in any tab, sets the cookie this page sends).
    const RETRY_MS = 3000;
    let wire = null;
    const LOST = "Lost the connection to the server; reconnecting…";
    function connect() {
      const stream = new EventSource(body.dataset.stream, { withCredentials: true });
      stream.onopen = () => {
        body.dataset.streamState = "open";
        note.textContent = "Live.";
        // The stage's log stream was refused alike: it is opened again with the run's.
        stageLogs.again(selected);
      };
      // A whole state, then deltas of it (web/_deltas.py): `wire` is the last state as sent,
      // which drawing never changes.
      stream.onmessage = (event) => {
        body.dataset.lastEventId = event.lastEventId;
        wire = JSON.parse(event.data);
        onState(wire);
      };
      stream.addEventListener("delta", (event) => {
        const delta = JSON.parse(event.data);
        if (wire === null || String(delta.base) !== body.dataset.lastEventId) {
          // It follows a state this page did not apply: the whole state again, on a new stream.
          stream.close();
          wire = null;
          connect();
          return;
        }
        body.dataset.lastEventId = event.lastEventId;
        wire = deltas.apply(wire, delta.state);
        onState(wire, delta.state);
      });
      stream.addEventListener("end", () => {
        stream.close();
        body.dataset.streamState = "ended";
        // Said with its status: this note is the page's live region, and "ended" alone left
        // a screen reader's user to find out how. (A stream may end before any state: the
        // page then shows the server's rendering.)
        note.textContent = "The run has ended" + (state === null ? "." : ": " + state.run.status + ".");
        if (state === null) laidOut();  // no state, no drawing to wait for
        if (drawingLost) sayDrawingLost();
      });
      stream.addEventListener("problem", (event) => {
        note.textContent = "Live updates interrupted: " + JSON.parse(event.data).error + " (reconnecting)";
      });
      stream.onerror = () => {
        if (body.dataset.streamState === "ended") return;
        if (stream.readyState === EventSource.CLOSED) { askWhy(); return; }
        body.dataset.streamState = "reconnecting";
        note.textContent = LOST;
      };
    }

    async function askWhy() {
      const probe = new AbortController();
      let status = 0;
      let error = "";
      try {
        const response = await fetch(body.dataset.stream, { credentials: "same-origin", signal: probe.signal });
        status = response.status;
        if (!response.ok) { try { error = (await response.json()).error || ""; } catch (e) { error = ""; } }
      } catch (e) { status = 0; }
      probe.abort();  // a granted stream is opened again by connect()
      if (status === 200) { connect(); return; }
      body.dataset.streamState = status === 401 ? "signed-out" : "reconnecting";
      note.textContent = status === 401 ? signInAgain()
        : status === 0 ? LOST
        : "The server refused the live updates (HTTP " + status + (error ? ": " + error : "") + "); trying again…";
      window.setTimeout(askWhy, RETRY_MS);
    }
    connect();
  }

  // A run not found by its whole id may have just started, its first span not yet in the
  // span source: the page asks again every 3 s for a minute, and shows the run once there.
  // It stayed "Run not found" until reloaded by hand.
  function awaitRun(url) {
    const note = document.getElementById("awaiting");
    let tries = 20;
    async function ask() {
      let status = 0;
      try { status = (await fetch(url, { credentials: "same-origin" })).status; } catch (e) { status = 0; }
      if (status === 200) { window.location.reload(); return; }
      tries -= 1;
      if (tries > 0) { window.setTimeout(ask, 3000); return; }
      note.textContent = "No such run appeared in a minute: reload the page to look again.";
    }
    window.setTimeout(ask, 3000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = document.body.dataset.page;
    localizeTimes();
    if (page === "runs") window.taskdaemonRunsPage();
    if (page === "run") runPage();
    if (page === "missing" && document.body.dataset.awaited) awaitRun(document.body.dataset.awaited);
  });
})();
