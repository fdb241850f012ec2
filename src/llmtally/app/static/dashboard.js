// llmtally admin dashboard: reads /api/v1/admin/* for the chosen period and draws it with Chart.js.
"use strict";
(function () {
  const API = "/api/v1/admin";
  const form = document.getElementById("period");
  const charts = {};
  window.llmtallyCharts = charts;
  const { FAILURE, colorFor, valueAxis, tooltip } = window.llmtallyChart;

  const isoDay = (d) => d.toISOString().slice(0, 10);
  const addDays = (d, n) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + n));
  const todayUTC = () => { const n = new Date(); return new Date(Date.UTC(n.getUTCFullYear(), n.getUTCMonth(), n.getUTCDate())); };

  function period() {
    const preset = form.preset.value;
    const today = todayUTC();
    if (preset === "today") return [today, addDays(today, 1)];
    if (preset === "7d") return [addDays(today, -6), addDays(today, 1)];
    if (preset === "custom" && form.since.value && form.until.value) {
      return [new Date(form.since.value + "T00:00:00Z"), addDays(new Date(form.until.value + "T00:00:00Z"), 1)];
    }
    return [new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1)), addDays(today, 1)];
  }

  async function get(path, params) {
    const url = API + path + "?" + new URLSearchParams(params).toString();
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  const { num, money } = window.llmtallyChart;
  const fmt = {
    requests: (v) => num(v).toLocaleString(),
    total_tokens: (v) => num(v).toLocaleString(),
    cost: money,
    active_users: (v) => num(v).toLocaleString(),
    error_rate: (v) => (v === null ? "–" : (num(v) * 100).toFixed(2) + " %"),
  };

  // A user is named the same way in the chart and in the table: e-mail when known, else the id.
  const userLabel = (u) => u.email || u.user_id;

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function fill(id, rows, build) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = body.insertRow();
      const td = cell(tr, "none in this period", "muted");
      td.colSpan = 6;
      return;
    }
    rows.forEach((r) => build(body.insertRow(), r));
  }

  function draw(id, config) {
    if (charts[id]) charts[id].destroy();
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    charts[id] = new Chart(document.getElementById(id), config);
  }

  function stacked(rows, days, key, by) {
    const groups = [...new Set(rows.map((r) => r[by]))].sort();
    const index = new Map(days.map((d, i) => [d, i]));
    return groups.map((g) => {
      const data = days.map(() => 0);
      rows.filter((r) => r[by] === g).forEach((r) => { data[index.get(r.day)] += num(r[key]); });
      return { label: g, data, backgroundColor: colorFor(g), stack: "s" };
    });
  }

  let last = null;

  function drawSeries() {
    if (!last) return;
    const { rows, days } = last;
    const stackedOpts = (kind) => ({ scales: { x: { stacked: true }, y: valueAxis(kind, { stacked: true }) }, plugins: { tooltip: tooltip(kind) } });
    draw("chart-cost", { type: "bar", data: { labels: days, datasets: stacked(rows, days, "cost", document.getElementById("cost-by").value) }, options: stackedOpts("money") });
    draw("chart-tokens", { type: "bar", data: { labels: days, datasets: stacked(rows, days, "total_tokens", document.getElementById("tokens-by").value) }, options: stackedOpts("count") });
  }

  // A custom range needs both days, the first not after the last: otherwise say so, load nothing.
  function rangeProblem() {
    if (form.preset.value !== "custom") return null;
    if (!form.since.value || !form.until.value) return "Choose both the first and the last day of the custom range.";
    if (form.since.value > form.until.value) return "The first day of the range is after the last one.";
    return null;
  }

  async function load(event) {
    if (event) event.preventDefault();
    const error = document.getElementById("load-error");
    const problem = rangeProblem();
    if (problem) {
      error.textContent = problem;
      error.hidden = false;
      return;
    }
    const [since, until] = period();
    const params = { since: isoDay(since), until: isoDay(until) };
    document.getElementById("period-label").textContent = params.since + " – " + isoDay(addDays(until, -1)) + " (UTC)";
    for (const f of ["csv", "jsonl"]) {
      document.getElementById("export-" + f).href = API + "/export?" + new URLSearchParams({ ...params, format: f });
    }
    try {
      const [summary, series, users, latency, failures, unpriced, models, deployments, percentiles, tags, refused, teams] = await Promise.all([
        get("/summary", params), get("/timeseries", params), get("/top-users", { ...params, limit: 10 }),
        get("/latency", params), get("/failures", { ...params, limit: 50 }), get("/unpriced", params),
        get("/models", params), get("/deployments", params), get("/latency-percentiles", params),
        get("/tags", { ...params, limit: 50 }), get("/refusals", { ...params, limit: 50 }), get("/teams", {}),
      ]);
      error.hidden = true;

      for (const card of document.querySelectorAll("#totals .card")) {
        const key = card.dataset.key;
        const now = summary.current[key], before = summary.previous[key];
        card.querySelector(".value").textContent = fmt[key](now);
        const delta = card.querySelector(".delta");
        if (now === null || before === null || num(before) === 0) {
          delta.textContent = "previous period: " + fmt[key](before);
          delta.className = "delta muted";
        } else {
          const change = ((num(now) - num(before)) / num(before)) * 100;
          delta.textContent = (change >= 0 ? "▲ " : "▼ ") + Math.abs(change).toFixed(1) + " % vs previous " + fmt[key](before);
          delta.className = "delta " + (change >= 0 ? "up" : "down");
        }
      }

      const days = [];
      for (let d = since; d < until; d = addDays(d, 1)) days.push(isoDay(d));
      last = { rows: series, days };
      drawSeries();

      const perDay = (key) => days.map((d) => series.filter((r) => r.day === d).reduce((s, r) => s + num(r[key]), 0));
      // A line needs a few days to say anything: over one to three days, side-by-side bars.
      const few = days.length <= 3;
      draw("chart-requests", {
        type: few ? "bar" : "line",
        data: { labels: days, datasets: [
          { label: "requests", data: perDay("requests"), borderColor: "#2563eb", backgroundColor: "#2563eb" },
          { label: "failures", data: perDay("failures"), borderColor: FAILURE, backgroundColor: FAILURE },
        ] },
        options: { scales: { y: valueAxis("count") }, plugins: { tooltip: tooltip("count") } },
      });
      draw("chart-users", {
        type: "bar",
        data: { labels: users.map(userLabel), datasets: [{ label: "cost", data: users.map((u) => num(u.cost)), backgroundColor: users.map((u) => colorFor(u.user_id)) }] },
        options: { indexAxis: "y", scales: { x: valueAxis("money") }, plugins: { legend: { display: false }, tooltip: tooltip("money") } },
      });
      const mix = new Map();
      series.forEach((r) => mix.set(r.model, (mix.get(r.model) || 0) + num(r.requests)));
      draw("chart-models", {
        type: "doughnut",
        data: { labels: [...mix.keys()], datasets: [{ data: [...mix.values()], backgroundColor: [...mix.keys()].map(colorFor) }] },
        options: { plugins: { tooltip: tooltip("count") } },
      });
      draw("chart-latency", {
        type: "bar",
        data: {
          labels: latency.buckets.map((b) => (b.upper_ms === null ? "> " + b.lower_ms + " ms" : "≤ " + b.upper_ms + " ms")),
          datasets: [{ label: "requests", data: latency.buckets.map((b) => b.requests), backgroundColor: "#0d9488" }],
        },
        options: { scales: { y: valueAxis("count") }, plugins: { legend: { display: false }, tooltip: tooltip("count") } },
      });
      document.getElementById("latency-note").textContent = "(" + latency.sampled + " most recent requests, at most " + latency.sample_limit + ")";

      fill("top-users", users, (tr, u) => {
        const td = document.createElement("td");
        const a = document.createElement("a");
        a.href = "/admin/users/" + encodeURIComponent(u.user_id);
        a.textContent = userLabel(u);
        a.title = u.user_id;
        td.appendChild(a);
        tr.appendChild(td);
        cell(tr, u.user_id, "id");
        cell(tr, num(u.requests).toLocaleString(), "n");
        cell(tr, num(u.total_tokens).toLocaleString(), "n");
        cell(tr, num(u.failures).toLocaleString(), "n");
        cell(tr, money(u.cost), "n");
      });
      fill("failures", failures, (tr, f) => {
        cell(tr, f.created_at.replace("T", " ").slice(0, 19));
        cell(tr, f.user_id);
        cell(tr, f.model);
        cell(tr, (f.error_type ? f.error_type + ": " : "") + (f.error || ""), "error");
      });
      fill("models", models, (tr, m) => {
        cell(tr, m.model);
        cell(tr, m.provider);
        cell(tr, num(m.requests).toLocaleString(), "n");
        cell(tr, num(m.failures).toLocaleString(), "n");
        cell(tr, num(m.retries).toLocaleString(), "n");
        cell(tr, num(m.cache_hits).toLocaleString(), "n");
        cell(tr, money(m.saved_cost), "n");
        cell(tr, num(m.total_tokens).toLocaleString(), "n");
        cell(tr, num(m.cached_tokens).toLocaleString(), "n");
        cell(tr, money(m.cost) + (m.unpriced_requests ? " (+" + m.unpriced_requests + " unpriced)" : ""), "n");
        cell(tr, m.estimated_requests ? money(m.estimated_cost) + " (" + m.estimated_requests + (m.estimated_requests === 1 ? " call)" : " calls)") : "–", "n");
      });
      fill("deployments", deployments, (tr, d) => {
        cell(tr, d.model_group);
        cell(tr, d.model);
        cell(tr, d.api_base || "–");
        cell(tr, num(d.attempts).toLocaleString(), "n");
        cell(tr, num(d.failed_attempts).toLocaleString(), "n");
        cell(tr, (num(d.error_rate) * 100).toFixed(2) + " %", "n");
        cell(tr, d.avg_latency_ms === null ? "–" : num(d.avg_latency_ms).toLocaleString() + " ms", "n");
      });
      const ms = (v) => (v === null || v === undefined ? "–" : num(v).toLocaleString() + " ms");
      document.getElementById("percentile-note").textContent = percentiles.sampled.toLocaleString() + " read, at most " + percentiles.sample_limit.toLocaleString();
      fill("latency-models", percentiles.by_model, (tr, m) => {
        cell(tr, m.model);
        cell(tr, m.provider);
        cell(tr, num(m.requests).toLocaleString(), "n");
        cell(tr, ms(m.p50_ms), "n");
        cell(tr, ms(m.p95_ms), "n");
        cell(tr, ms(m.p99_ms), "n");
        cell(tr, num(m.streamed).toLocaleString(), "n");
        cell(tr, ms(m.first_token_p50_ms), "n");
        cell(tr, ms(m.first_token_p95_ms), "n");
        cell(tr, num(m.failures).toLocaleString(), "n");
        cell(tr, num(m.cancelled).toLocaleString(), "n");
      });
      fill("latency-deployments", percentiles.by_deployment, (tr, d) => {
        cell(tr, d.model_group);
        cell(tr, d.model);
        cell(tr, d.api_base || "–");
        cell(tr, num(d.attempts).toLocaleString(), "n");
        cell(tr, ms(d.p50_ms), "n");
        cell(tr, ms(d.p95_ms), "n");
        cell(tr, ms(d.p99_ms), "n");
        cell(tr, num(d.streamed).toLocaleString(), "n");
        cell(tr, ms(d.first_token_p50_ms), "n");
        cell(tr, ms(d.first_token_p95_ms), "n");
        cell(tr, num(d.failures).toLocaleString(), "n");
        cell(tr, num(d.cancelled).toLocaleString(), "n");
      });
      document.getElementById("refusals").textContent =
        "In this period: " + num(refused.budget).toLocaleString() + " by a budget, " + num(refused.rate_limit).toLocaleString() + " by a rate limit.";
      const reasons = { budget: "budget", unpriced: "budget, model without a price", rpm: "requests per minute", tpm: "tokens per minute" };
      fill("refusal-rows", refused.rows, (tr, r) => {
        cell(tr, r.user_id);
        cell(tr, reasons[r.reason] || r.reason);
        cell(tr, r.model);
        cell(tr, num(r.refused).toLocaleString(), "n");
        cell(tr, r.last_at.slice(0, 16).replace("T", " "));
      });
      fill("teams", teams, (tr, t) => {
        const td = document.createElement("td");
        const a = document.createElement("a");
        a.href = "/admin/users/" + encodeURIComponent(t.team_id);
        a.textContent = t.name || t.team_id;
        a.title = t.team_id;
        td.appendChild(a);
        tr.appendChild(td);
        cell(tr, t.members.join(", ") || "–");
        cell(tr, num(t.requests).toLocaleString(), "n");
        cell(tr, num(t.tokens).toLocaleString(), "n");
        cell(tr, money(t.cost), "n");
      });
      fill("tags", tags, (tr, t) => {
        cell(tr, t.tag);
        cell(tr, num(t.requests).toLocaleString(), "n");
        cell(tr, num(t.total_tokens).toLocaleString(), "n");
        cell(tr, money(t.cost) + (t.unpriced_requests ? " + " + t.unpriced_requests + " unpriced" : ""), "n");
      });
      fill("unpriced", unpriced, (tr, m) => {
        cell(tr, m.model);
        cell(tr, m.provider);
        cell(tr, num(m.unpriced_requests).toLocaleString(), "n");
        cell(tr, num(m.total_tokens).toLocaleString(), "n");
        cell(tr, m.last_day);
      });
      window.llmtallyReady = true;
    } catch (e) {
      error.textContent = "Could not load the dashboard: " + e.message;
      error.hidden = false;
    }
  }

  form.addEventListener("submit", load);
  for (const input of [form.since, form.until]) {
    input.addEventListener("change", () => { form.querySelector("input[value=custom]").checked = true; });
  }
  form.querySelectorAll("input[name=preset]").forEach((r) => r.addEventListener("change", () => { if (r.value !== "custom") load(); }));
  document.getElementById("cost-by").addEventListener("change", drawSeries);
  document.getElementById("tokens-by").addEventListener("change", drawSeries);
  load();
})();
