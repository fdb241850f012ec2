// llmtally usage page: cost per month by model, from the JSON embedded in the page.
"use strict";
(function () {
  const source = document.getElementById("monthly-data");
  const canvas = document.getElementById("monthly-chart");
  window.llmtallyCharts = {};
  if (!source || !canvas) return;
  const data = JSON.parse(source.textContent);
  const { colorFor, valueAxis, tooltip } = window.llmtallyChart;
  window.llmtallyCharts.monthly = new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: data.series.map((s) => ({ label: s.label, data: s.cost.map(Number), backgroundColor: colorFor(s.label), stack: "s" })),
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      scales: { x: { stacked: true }, y: valueAxis("money", { stacked: true }) },
      plugins: { tooltip: tooltip("money") },
    },
  });
})();
