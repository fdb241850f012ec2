// llmtally usage page: cost per month by model, from the JSON embedded in the page.
"use strict";
(function () {
  const source = document.getElementById("monthly-data");
  const canvas = document.getElementById("monthly-chart");
  window.llmtallyCharts = {};
  if (!source || !canvas) return;
  const data = JSON.parse(source.textContent);
  const palette = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16"];
  window.llmtallyCharts.monthly = new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: data.series.map((s, i) => ({ label: s.label, data: s.cost.map(Number), backgroundColor: palette[i % palette.length], stack: "s" })),
    },
    options: { responsive: true, maintainAspectRatio: false, animation: false, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  });
})();
