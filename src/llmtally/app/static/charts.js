// llmtally's chart conventions, shared by the dashboard and the usage pages (Chart.js is bundled):
// - a model (or provider, or user) has one colour everywhere, derived from its name;
// - red is kept for failures: no name is ever drawn in it;
// - cost axes and tooltips in dollars, with the cards' six decimals; count axes in whole numbers;
// - a bar is never wider than 48 px, so one day or one month is not one bar across the chart.
"use strict";
(function () {
  const FAILURE = "#dc2626";
  // No red and no near-red: those mean failure.
  const palette = ["#2563eb", "#f59e0b", "#10b981", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16", "#64748b", "#f97316", "#0d9488", "#a16207", "#4f46e5"];

  function colorFor(name) {
    let h = 2166136261;  // FNV-1a over the name: the same name gets the same colour on every page
    const text = String(name);
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 16777619) >>> 0;
    }
    return palette[h % palette.length];
  }

  const num = (v) => (v === null || v === undefined ? 0 : Number(v));
  const money = (v) => "$" + num(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 6 });
  const count = (v) => num(v).toLocaleString("en-US");

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  // Options for an axis of dollars or of whole counts, and tooltips that agree with it.
  function valueAxis(kind, extra) {
    const ticks = kind === "money"
      ? { callback: (v) => money(v) }
      : { precision: 0, callback: (v) => (Number.isInteger(v) ? count(v) : null) };
    return Object.assign({ beginAtZero: true, ticks }, extra || {});
  }

  function tooltip(kind) {
    const format = kind === "money" ? money : count;
    return {
      callbacks: {
        label: (ctx) => {
          const value = ctx.parsed && typeof ctx.parsed === "object" ? (ctx.chart.options.indexAxis === "y" ? ctx.parsed.x : ctx.parsed.y) : ctx.parsed;
          return (ctx.dataset.label ? ctx.dataset.label + ": " : (ctx.label ? ctx.label + ": " : "")) + format(value);
        },
      },
    };
  }

  function applyTheme() {
    if (!window.Chart) return;
    Chart.defaults.color = cssVar("--muted", "#6b7280");
    Chart.defaults.borderColor = cssVar("--line", "#e5e7eb");
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.datasets.bar.maxBarThickness = 48;
  }
  applyTheme();

  window.llmtallyChart = { FAILURE, colorFor, money, count, num, valueAxis, tooltip, applyTheme };
})();
