// taskdaemon web page: the runs page (its rows kept fresh, its pages, the pipeline box).
// Loaded after page.js, whose helpers it takes, and before app.js, which starts it.
"use strict";

window.taskdaemonRunsPage = (function () {
  const REFRESH_MS = 3000;
  const { RUN_ID, el, fmtDuration, fmtTime, statePill, signInAgain } = window.taskdaemonPage;

  function runsPage() {
    const tbody = document.querySelector("#runs tbody");
    const note = document.getElementById("runs-error");
    const updated = document.getElementById("runs-updated");

    // The Replay of cell, as the server's template writes it: the run a replay replayed,
    // linked when it is a run id (a foreign producer's value is only shown).
    function replayOf(original) {
      const cell = el("td");
      if (!original) return cell;
      if (!RUN_ID.test(original)) {
        cell.appendChild(el("code", { class: "replay-of" }, original.slice(0, 12)));
        return cell;
      }
      const link = el("a", { class: "replay-of", href: "/runs/" + encodeURIComponent(original) });
      link.appendChild(el("code", null, original.slice(0, 12)));
      cell.appendChild(link);
      return cell;
    }

    function row(run) {
      const tr = el("tr", { "data-run-id": run.run_id });
      const first = el("td");
      const link = el("a", { href: "/runs/" + encodeURIComponent(run.run_id) });
      link.appendChild(el("code", null, run.run_id.slice(0, 12)));
      first.appendChild(link);
      if (run.live) { first.appendChild(document.createTextNode(" ")); first.appendChild(el("span", { class: "tag" }, "live")); }
      tr.appendChild(first);
      tr.appendChild(el("td", null, run.pipeline));
      const status = el("td"); status.appendChild(statePill(run.status)); tr.appendChild(status);
      const started = el("td");
      started.appendChild(el("time", { datetime: new Date(run.start * 1000).toISOString() }, fmtTime(run.start)));
      tr.appendChild(started);
      // an interrupted run: its known part, "at least", as the server's rows and runs list say
      tr.appendChild(el("td", null, run.lasted_at_least == null ? run.duration : "at least " + fmtDuration(run.lasted_at_least)));
      tr.appendChild(el("td", null, run.stages));
      tr.appendChild(el("td", null, run.failed_stages));
      tr.appendChild(replayOf(run.replay_of));
      return tr;
    }

    // A refresh keeps each run's row and its link (the first cell) and writes the rest only
    // when the run changed: rows drawn anew every 3 s took the link a keyboard focus or a
    // press was on, and the focus fell back to the top of the page. The server's rows are
    // kept alike at the first refresh.
    const shown = new Map();
    for (const tr of tbody.querySelectorAll("tr[data-run-id]")) shown.set(tr.dataset.runId, { tr: tr, key: null });

    function place(run) {
      const key = JSON.stringify(run);
      const known = shown.get(run.run_id);
      if (known && known.key === key) return known.tr;
      const fresh = row(run);
      if (!known) { shown.set(run.run_id, { tr: fresh, key: key }); return fresh; }
      known.key = key;
      const first = known.tr.firstElementChild;
      while (known.tr.children.length > 1) known.tr.lastElementChild.remove();
      known.tr.append(...Array.from(fresh.children).slice(1));
      const tag = first.querySelector(".tag");
      if (tag && !run.live) {
        if (tag.previousSibling && tag.previousSibling.nodeType === Node.TEXT_NODE) tag.previousSibling.remove();
        tag.remove();
      }
      if (!tag && run.live) first.append(" ", el("span", { class: "tag" }, "live"));
      return known.tr;
    }

    // Rows are inserted and removed around the kept ones, never taken out and put back.
    function settle(rows) {
      rows.forEach((tr, i) => { if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null); });
      while (tbody.children.length > rows.length) tbody.lastElementChild.remove();
      const ids = new Set(rows.map((tr) => tr.dataset.runId));
      for (const id of Array.from(shown.keys())) if (!ids.has(id)) shown.delete(id);
    }

    // "Older runs" follows the table's last row. A refresh brings the runs that started since
    // on top and pushes as many off the bottom: the link the server drew, to the runs after
    // its own last row, skipped those (they were on no page). The page after a row is named by
    // its run id (`before`, _runs_query.page_url): runs that started in one nanosecond come by run
    // id, and a start alone lost those of the last row's start that the page had no room for.
    const pages = document.getElementById("runs-pages");
    const limit = Number(pages.dataset.limit);
    function pageLinks(runs) {
      const older = document.getElementById("older-runs");
      const full = runs.length >= limit;
      if (full) {
        const query = new URLSearchParams(window.location.search);
        query.delete("until");
        query.set("before", runs[runs.length - 1].run_id);
        older.href = "/?" + query.toString();
      }
      older.hidden = !full;
      const count = document.getElementById("runs-shown");
      count.hidden = !full;
      count.textContent = runs.length + " runs shown, newest first.";
      pages.hidden = !full && !document.getElementById("newest-runs");
    }

    async function refresh() {
      if (document.hidden) return;
      try {
        const response = await fetch("/api/runs/recent" + window.location.search, { credentials: "same-origin" });
        const body = await response.json();
        if (!response.ok) {
          note.textContent = response.status === 401 ? signInAgain() : body.error || ("HTTP " + response.status);
          note.hidden = false;
          return;
        }
        note.hidden = true;
        const rows = body.runs.map(place);
        if (!rows.length) {
          const tr = el("tr", { class: "empty" }); tr.appendChild(el("td", { colspan: "8" }, body.empty)); rows.push(tr);
        }
        settle(rows);
        pageLinks(body.runs);
        updated.textContent = "Updated " + fmtTime(Date.now() / 1000) + "; this list refreshes by itself.";
      } catch (error) {
        note.textContent = "Cannot reach the server: " + error; note.hidden = false;
      }
    }
    window.setInterval(refresh, REFRESH_MS);
    offerPipelines();
  }

  // The pipeline filter matches a name exactly: the box offers the names the server knows
  // (pipelines with recent runs, and the definitions its engine has seen).
  async function offerPipelines() {
    const list = document.getElementById("pipeline-names");
    try {
      const response = await fetch("/api/pipelines", { credentials: "same-origin" });
      if (!response.ok) return;
      const names = (await response.json()).pipelines.map((p) => p.name).sort();
      list.replaceChildren(...names.map((name) => el("option", { value: name })));
    } catch (error) { /* the box still takes any name */ }
  }

  return runsPage;
})();
