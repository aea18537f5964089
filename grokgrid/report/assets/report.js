(function () {
  "use strict";
  // The one JSON blob the report embeds (report.page.DATA_ID); its "page" entry names the other
  // elements and the click-a-cell view's sizes (report.curve_figures).
  var DATA = "grokgrid-data";
  function bytes(b64) {
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  var HALF = new Float32Array(65536);  // float16 bit pattern -> value
  for (var u = 0; u < 65536; u++) {
    var s = (u & 0x8000) ? -1 : 1, e = (u >> 10) & 31, f = u & 1023;
    HALF[u] = e === 0 ? s * f * Math.pow(2, -24)
            : e === 31 ? (f ? NaN : s * Infinity) : s * Math.pow(2, e - 15) * (1 + f / 1024);
  }
  function esc(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function start() {
    var holder = document.getElementById(DATA);
    if (!holder) throw new Error("grokgrid report: page incomplete");
    var data = JSON.parse(holder.textContent), runs = data.runs, enc = data.curves, page = data.page;
    var diagram = document.getElementById(page.phase_diagram_id), curvesDiv = document.getElementById(page.cell_curves_id);
    var info = document.getElementById(page.cell_info_id);
    if (!diagram || !curvesDiv || !window.Plotly) throw new Error("grokgrid report: page incomplete");
    var offsets = [0];
    enc.n.forEach(function (n, i) { offsets.push(offsets[i] + n); });
    var patterns = enc.patterns.map(function (b) { var x = bytes(b); return Array.from(new Float64Array(x.buffer)); });
    var values = {};
    Object.keys(enc.values).forEach(function (k) { var x = bytes(enc.values[k]); values[k] = new Uint16Array(x.buffer); });
    function series(r, name) {
      var out = new Array(enc.n[r]), v = values[name], o = offsets[r], log = enc.log_values.indexOf(name) >= 0;
      for (var i = 0; i < enc.n[r]; i++) { var x = HALF[v[o + i]]; out[i] = log ? Math.pow(10, x) : x; }
      return out;
    }
    var PANELS = [["train_acc", "x", "y", "dash"], ["val_acc", "x", "y", "solid"],
                  ["train_loss", "x2", "y2", "dash"], ["val_loss", "x2", "y2", "solid"],
                  ["weight_norm", "x3", "y3", "solid"]];
    var baseLayout = curvesDiv.layout, baseAnnotations = (baseLayout.annotations || []).slice();
    // Step 0 (logged before training) is drawn at half the smallest positive step of the cell's
    // runs, as report.zero_step_x (a log axis has no 0); the x titles and the hovers say so.
    function zeroStepX(stepLists) {
      var lo = Infinity;
      stepLists.forEach(function (s) { s.forEach(function (v) { if (v > 0 && v < lo) lo = v; }); });
      return isFinite(lo) ? lo / 2 : 1;
    }
    function stepText(v) {  // as report.format_steps
      var units = [["M", 1e6], ["k", 1e3]];
      for (var i = 0; i < units.length; i++)
        if (Math.abs(v) >= units[i][1]) return String(Number((v / units[i][1]).toPrecision(6))) + units[i][0];
      return String(Number(v.toPrecision(6)));
    }
    // A t_train / t_val label sits right of its line, or left of it from page.mark_label_flip
    // (report.curve_figures.MARK_LABEL_FLIP) of the way across the (log) step range on: right
    // of a line near the plot's right edge
    // (t_val at the last step) it was cut off there, or plotly stretched the step axis past the
    // last step to fit it (unlike the other two panels').
    function markLabel(name, step, color, lo, hi) {
      var at = hi > lo ? (Math.log10(step) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : 0;
      var left = at > page.mark_label_flip;
      return {text: name.replace("_", "<sub>") + "</sub>", x: Math.log10(step), xref: "x", y: 0.04,
              yref: "y domain", xanchor: left ? "right" : "left", xshift: left ? -3 : 3, showarrow: false,
              font: {size: 11, color: color}};
    }
    function cellFigure(cell) {
      var shown = cell.runs.slice(0, data.max_cell_runs), traces = [], shapes = [], notes = baseAnnotations.slice();
      var marks = [], stepLists = shown.map(function (r) { return patterns[enc.pattern[r]]; });
      var zeroX = zeroStepX(stepLists);
      var hasZero = stepLists.some(function (s) { return s.indexOf(0) >= 0; });
      shown.forEach(function (r, k) {
        var steps = stepLists[k], color = data.colors[runs.phase[r]] || "#BBBBBB";
        var x = steps.map(function (s) { return s > 0 ? s : zeroX; });
        var tag = runs.phase[r] + (runs.detail[r] ? " · " + runs.detail[r] : "");
        PANELS.forEach(function (p) {
          // customdata: the true step, for the hover (step 0 is drawn at zeroX).
          traces.push({type: "scatter", mode: "lines", x: x, customdata: steps, y: series(r, p[0]), xaxis: p[1],
                       yaxis: p[2], line: {color: color, width: 2, dash: p[3]}, opacity: 0.85,
                       name: runs.short[r] + " (" + tag + ")", legendgroup: runs.id[r], showlegend: p[0] === "val_acc",
                       hovertemplate: esc(runs.label[r]) + "<br>" + esc(tag) + "<br>step %{customdata}<br>" +
                                      p[0].replace("_", " ") + " %{y:.4g}<extra></extra>"});
        });
        if (shown.length <= 3) {  // mark t_train and t_val, as in the papers' figures
          [["t_train", "#777"], ["t_val", color]].forEach(function (t) {
            var step = runs[t[0]][r];
            if (step === null || step <= 0) return;
            shapes.push({type: "line", xref: "x", yref: "y domain", x0: step, x1: step, y0: 0, y1: 1,
                         line: {color: t[1], width: 1.2, dash: "dot"}});
            if (shown.length === 1) marks.push([t[0], step, t[1] === "#777" ? "#555" : t[1]]);
          });
        }
      });
      // Stage boundaries (spec stages:): a dashed line in every panel, where the next stage begins.
      (data.stage_ends || []).forEach(function (end) {
        ["x", "x2", "x3"].forEach(function (axis) {
          shapes.push({type: "line", xref: axis, yref: axis.replace("x", "y") + " domain", x0: end, x1: end, y0: 0,
                       y1: 1, layer: "below", line: {color: "#555", width: 1, dash: "dash"}});
        });
      });
      // Log-axis ticks for this cell's ranges: a label per decade over two decades, else 1-2-5.
      var steps = [], losses = [];
      traces.forEach(function (t) {
        steps = steps.concat(t.x);
        if (t.yaxis === "y2") losses = losses.concat(t.y);
      });
      function logTicks(values) {  // as report.log_ticks
        var lo = Infinity, hi = -Infinity;
        values.forEach(function (v) { if (v > 0 && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
        if (!(lo > 0)) return {};
        var decades = Math.log10(hi / lo);
        if (decades > 6) return {dtick: 2, tickvals: null, ticktext: null};
        if (decades >= 2) return {dtick: 1, tickvals: null, ticktext: null};
        var vals = [], texts = [];
        for (var e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)); e++)
          [1, 2, 5].forEach(function (m) {
            var v = m * Math.pow(10, e);
            if (v >= lo * 0.8 && v <= hi * 1.25) { vals.push(v); texts.push(String(Number(v.toPrecision(3)))); }
          });
        return {tickvals: vals, ticktext: texts, dtick: null};
      }
      var legendRows = Math.ceil(shown.length / page.cell_legend_columns);
      var lo = Infinity, hi = -Infinity;  // the step range, as the (unpadded) line plots span it
      steps.forEach(function (v) { if (v > 0 && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
      marks.forEach(function (m) { notes.push(markLabel(m[0], m[1], m[2], lo, hi)); });
      var layout = Object.assign({}, baseLayout, {shapes: shapes, annotations: notes,
        height: page.cell_height + page.cell_legend_row * legendRows,
        margin: Object.assign({}, baseLayout.margin, {b: page.cell_bottom + page.cell_legend_row * legendRows})});
      var stepTicks = logTicks(steps);
      var xTitle = {text: hasZero ? "step (step 0 drawn at " + stepText(zeroX) + ")" : "step"};  // as report.step_title
      ["xaxis", "xaxis2", "xaxis3"].forEach(function (a) {
        layout[a] = Object.assign({}, baseLayout[a], stepTicks, {title: xTitle});
      });
      if (baseLayout.yaxis2 && baseLayout.yaxis2.type === "log")
        layout.yaxis2 = Object.assign({}, baseLayout.yaxis2, logTicks(losses));
      return {data: traces, layout: layout};
    }
    function renderInfo(cell) {
      info.textContent = "";
      var title = document.createElement("p");
      title.className = "cell-title";
      title.textContent = cell.title;
      info.appendChild(title);
      var table = document.createElement("table"), head = table.insertRow();
      table.className = "summary runs";
      ["run", "phase", "t_train", "t_val", "gap", "final acc (train / val)", "reason"].forEach(function (h) {
        var th = document.createElement("th"); th.textContent = h; head.appendChild(th);
      });
      cell.runs.forEach(function (r, i) {
        if (i >= 200) return;
        var row = table.insertRow(), swatch = document.createElement("span");
        function add(text, cls) { var td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; }
        add(runs.short[r]).title = runs.id[r];
        swatch.className = "swatch";
        swatch.style.background = data.colors[runs.phase[r]] || "#BBBBBB";
        add(runs.phase[r] + (runs.detail[r] ? " · " + runs.detail[r] : "")).prepend(swatch);
        ["t_train", "t_val", "gap"].forEach(function (k) { add(runs[k][r] === null ? "—" : String(runs[k][r]), "num"); });
        function acc(v) { return v === null ? "—" : v.toFixed(3); }
        add(acc(runs.final_train_acc[r]) + " / " + acc(runs.final_val_acc[r]), "num");
        add(runs.reason[r], "reason");
      });
      info.appendChild(table);
      var notes = [];
      if (cell.runs.length > data.max_cell_runs) notes.push("curves of the first " + data.max_cell_runs + " runs drawn");
      if (cell.runs.length > 200) notes.push("first 200 runs listed");
      if (notes.length) {
        var p = document.createElement("p"); p.className = "note";
        p.textContent = cell.runs.length + " runs in this cell: " + notes.join("; ") + ".";
        info.appendChild(p);
      }
    }
    var selection = [];  // [trace index, facet row] of the outline traces
    diagram.data.forEach(function (t, i) { if (t.meta && t.meta[0] === "selection") selection.push([i, t.meta[1]]); });
    function select(k) {
      var cell = data.cells[k];
      if (!cell) return;
      renderInfo(cell);
      var fig = cellFigure(cell);
      Plotly.react(curvesDiv, fig.data, fig.layout);
      var xs = [], ys = [], ids = [];
      selection.forEach(function (s) {
        ids.push(s[0]); xs.push(s[1] === cell.row ? [cell.x] : []); ys.push(s[1] === cell.row ? [cell.y] : []);
      });
      if (ids.length) Plotly.restyle(diagram, {x: xs, y: ys}, ids);
      document.body.setAttribute("data-selected-cell", String(k));
    }
    diagram.on("plotly_click", function (event) {
      var point = event.points && event.points[0];
      if (!point || point.customdata === null || point.customdata === undefined || point.customdata === "") return;
      select(Number(point.customdata));
    });
    function fromHash() {
      var m = /cell=(\d+)/.exec(window.location.hash);
      return m ? Number(m[1]) : data.default_cell;
    }
    window.addEventListener("hashchange", function () { select(fromHash()); });
    select(fromHash());
    document.body.setAttribute("data-grokgrid-ready", "1");
  }
  window.addEventListener("load", start);
})();
