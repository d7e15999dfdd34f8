// GovHub console: the live flow page (SSE from the api, hand-drawn SVG chart).
// Everything else is plain forms; htmx adds search-as-you-type on the catalogue.
(function () {
  "use strict";
  const root = document.getElementById("live");
  if (!root) return;
  const labels = JSON.parse(root.dataset.labels);
  const status = document.getElementById("live-status");

  function rows(id, entries, format) {
    const body = document.getElementById(id);
    if (!body) return;
    body.replaceChildren();
    const keys = Object.keys(entries).sort();
    if (!keys.length) {
      const tr = body.insertRow();
      const td = tr.insertCell();
      td.textContent = labels.no_data;
      td.className = "muted";
      return;
    }
    for (const key of keys) {
      const tr = body.insertRow();
      tr.dataset.key = key;
      tr.insertCell().textContent = labels.tiers[key] || key;
      for (const cell of format(entries[key])) {
        const td = tr.insertCell();
        td.textContent = cell;
        td.className = "num";
      }
    }
  }

  function chart(series) {
    const line = document.getElementById("live-line");
    const peak = Math.max(1, ...series.map((p) => p[1]));
    const w = 600, h = 160, n = Math.max(series.length - 1, 1);
    line.setAttribute("points", series.map((p, i) =>
      (i * w / n).toFixed(1) + "," + (h - 4 - (p[1] / peak) * (h - 12)).toFixed(1)).join(" "));
    document.getElementById("live-peak").textContent = String(peak);
  }

  function show(data) {
    status.hidden = true;
    document.getElementById("live-updated").textContent = new Date(data.at_ms).toLocaleTimeString();
    const one = (v) => [String(v)];
    rows("live-records-in", data.records_in_per_s, one);
    rows("live-by-resource", data.deliveries_per_s_by_resource, one);
    rows("live-by-tier", data.deliveries_per_s_by_tier, one);
    rows("live-dead", data.dead_letters, (v) => [String(v.total), String(v.per_s)]);
    if (data.subscribers_by_tier !== undefined) {
      rows("live-subscribers", data.subscribers_by_tier, one);
      rows("live-lag", data.lag_s_by_tier, one);
      const gw = document.getElementById("live-gateways");
      if (data.gateways.length) gw.textContent = data.gateways.join(", ");
    }
    chart(data.series);
    if (data.error) {
      status.textContent = data.error;
      status.hidden = false;
    }
  }

  const source = new EventSource(root.dataset.stream);
  source.addEventListener("flow", (event) => show(JSON.parse(event.data)));
  source.onerror = () => {
    status.textContent = labels.disconnected;
    status.hidden = false;
  };
})();
