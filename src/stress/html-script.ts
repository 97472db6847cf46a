// The inline script of the --html report: draws the plots on <canvas> from the JSON in
// <script id="mmemu-data"> (see plotData in html.ts). Plain ES2017 in a string so the page
// is the same whatever compiles this module; it only reads numbers from the data and sets
// text through textContent, so nothing in the data is ever run as code or markup.

/** A readable colour per page state (free light, the device states warm, trouble loud). */
export const STATE_COLORS: Record<string, string> = {
  free: "#e8e8e8",
  anon: "#3b78d8",
  shmem: "#1fa39b",
  kernel: "#4a4a4a",
  "device-private": "#f28e2b",
  "device-coherent": "#8e5ec9",
  pinned: "#d62728",
  migrating: "#f5d000",
};

export const PAGE_SCRIPT = String.raw`
"use strict";
(function () {
  var D = JSON.parse(document.getElementById("mmemu-data").textContent);
  var FALLBACK = ["#17becf", "#bcbd22", "#e377c2", "#7f7f7f"];
  var FONT = "12px system-ui, sans-serif";
  var sel = document.getElementById("run");
  var withFree = document.getElementById("with-free");
  var logCount = document.getElementById("log-count");
  var tip = document.getElementById("tip");

  function color(state, i) { return D.colors[state] || FALLBACK[i % FALLBACK.length]; }
  function commas(n) { return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function si(n) {
    var a = Math.abs(n);
    if (a >= 1e9) return +(n / 1e9).toPrecision(3) + "G";
    if (a >= 1e6) return +(n / 1e6).toPrecision(3) + "M";
    if (a >= 1e3) return +(n / 1e3).toPrecision(3) + "k";
    return String(+n.toPrecision(3));
  }
  function ms(ns) { return +(ns / 1e6).toFixed(ns >= 1e8 ? 0 : 2) + " ms"; }
  function dur(ns) {
    if (ns >= 1e6) return +(ns / 1e6).toPrecision(3) + " ms";
    if (ns >= 1e3) return +(ns / 1e3).toPrecision(3) + " \u00b5s";
    return Math.round(ns) + " ns";
  }
  // Round tick steps (1, 2, 5 x 10^k) covering [lo, hi].
  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    var raw = (hi - lo) / n, p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;
    var step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p, out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return out;
  }
  // Sizes the canvas backing store for the screen's pixel ratio; returns a context in CSS pixels.
  function setup(canvas, height) {
    var dpr = window.devicePixelRatio || 1, w = canvas.clientWidth || 800;
    canvas.style.height = height + "px";
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(height * dpr);
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = FONT;
    ctx.clearRect(0, 0, w, height);
    return { ctx: ctx, w: w, h: height };
  }
  function text(ctx, s, x, y, align, base, col) {
    ctx.fillStyle = col || "#333";
    ctx.textAlign = align || "left";
    ctx.textBaseline = base || "alphabetic";
    ctx.fillText(s, x, y);
  }
  function line(ctx, x0, y0, x1, y1, col, width, dash) {
    ctx.strokeStyle = col; ctx.lineWidth = width || 1; ctx.setLineDash(dash || []);
    ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke(); ctx.setLineDash([]);
  }
  // A plot frame with a linear y axis; returns the y mapping.
  // Ticks are [position, label] pairs when the axis is not linear in the labels.
  function yAxis(ctx, box, lo, hi, label, custom) {
    var y = function (v) { return box.y + box.h - ((v - lo) / (hi - lo || 1)) * box.h; };
    (custom || ticks(lo, hi, 4).map(function (v) { return [v, si(v)]; })).forEach(function (t) {
      line(ctx, box.x, y(t[0]), box.x + box.w, y(t[0]), "#eee");
      text(ctx, t[1], box.x - 6, y(t[0]), "right", "middle", "#555");
    });
    ctx.save(); ctx.translate(14, box.y + box.h / 2); ctx.rotate(-Math.PI / 2);
    text(ctx, label, 0, 0, "center", "middle", "#333"); ctx.restore();
    ctx.strokeStyle = "#999"; ctx.lineWidth = 1; ctx.strokeRect(box.x, box.y, box.w, box.h);
    return y;
  }
  function timeAxis(ctx, box, x, t0, t1) {
    ticks(t0, t1, 8).forEach(function (t) {
      line(ctx, x(t), box.y + box.h, x(t), box.y + box.h + 4, "#999");
      text(ctx, ms(t), x(t), box.y + box.h + 6, "center", "top", "#555");
    });
  }

  // Page-state map: one column per census sample, one row per bucket of frames.
  function heatmap(i) {
    var r = D.runs[i], canvas = document.getElementById("heatmap-" + i);
    var n = r.map.length, buckets = n ? r.map[0].length : 0;
    var rows = Math.max(buckets, 1), height = Math.min(640, Math.max(260, rows));
    var c = setup(canvas, height + 66), ctx = c.ctx;
    var box = { x: 130, y: 8, w: c.w - 140, h: height };
    var rgb = r.states.map(function (s, k) {
      var hex = color(s, k);
      return [parseInt(hex.slice(1, 3), 16), parseInt(hex.slice(3, 5), 16), parseInt(hex.slice(5, 7), 16)];
    });
    if (n && buckets) {
      var img = document.createElement("canvas");
      img.width = n; img.height = buckets;
      var ictx = img.getContext("2d"), data = ictx.createImageData(n, buckets), px = data.data;
      for (var s = 0; s < n; s++) {
        var m = r.map[s];
        for (var b = 0; b < buckets; b++) {
          var col = rgb[m.charCodeAt(b) - 48] || [0, 0, 0], o = (b * n + s) * 4;
          px[o] = col[0]; px[o + 1] = col[1]; px[o + 2] = col[2]; px[o + 3] = 255;
        }
      }
      ictx.putImageData(data, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(img, box.x, box.y, box.w, box.h);
    }
    ctx.strokeStyle = "#999"; ctx.lineWidth = 1; ctx.strokeRect(box.x, box.y, box.w, box.h);
    var yOf = function (frame) { return box.y + (frame / (r.framesPerBucket * rows)) * box.h; };
    // Regions of the frame space: system RAM, then each device's memory in registration order.
    var regions = [{ name: "system RAM", from: 0, to: r.systemFrames }], at = r.systemFrames;
    r.devices.forEach(function (d) { regions.push({ name: d.name, from: at, to: at + d.pages }); at += d.pages; });
    regions.forEach(function (g, k) {
      if (k > 0) {
        line(ctx, box.x - 120, yOf(g.from), box.x + box.w, yOf(g.from), k === 1 ? "#000" : "#555", k === 1 ? 2 : 1, k === 1 ? [] : [4, 3]);
      }
      var mid = (yOf(g.from) + yOf(Math.min(g.to, r.frames))) / 2;
      text(ctx, g.name, box.x - 8, mid - 7, "right", "middle", "#222");
      text(ctx, "frames " + si(g.from) + "\u2013" + si(g.to), box.x - 8, mid + 8, "right", "middle", "#777");
    });
    text(ctx, "device memory \u2193", box.x - 120, yOf(r.systemFrames) - 4, "left", "bottom", "#000");
    var x = function (s) { return box.x + ((s + 0.5) / Math.max(n, 1)) * box.w; };
    var every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(box.w / 110))));
    for (var t = 0; t < n; t += every) {
      line(ctx, x(t), box.y + box.h, x(t), box.y + box.h + 4, "#999");
      text(ctx, ms(r.simNs[t]), x(t), box.y + box.h + 6, "center", "top", "#333");
      text(ctx, "op " + si(r.op[t]), x(t), box.y + box.h + 21, "center", "top", "#777");
    }
    text(ctx, "census sample (simulated time, operation)", box.x + box.w / 2, box.y + box.h + 54, "center", "bottom", "#333");
    if (r.failureOp !== null) {
      // The run stopped here: mark the first census at or after the failing operation.
      var f = 0;
      while (f < n - 1 && r.op[f] < r.failureOp) f++;
      line(ctx, x(f), box.y, x(f), box.y + box.h, "#c62828", 2);
      text(ctx, "failed at op " + commas(r.failureOp), x(f) - 4, box.y + 4, "right", "top", "#c62828");
    }
    canvas.onmousemove = function (e) {
      var rect = canvas.getBoundingClientRect(), mx = e.clientX - rect.left, my = e.clientY - rect.top;
      var s = Math.floor(((mx - box.x) / box.w) * n), b = Math.floor(((my - box.y) / box.h) * rows);
      if (s < 0 || s >= n || b < 0 || b >= buckets) { tip.style.display = "none"; return; }
      var st = r.states[r.map[s].charCodeAt(b) - 48] || "?";
      tip.textContent = ms(r.simNs[s]) + ", op " + commas(r.op[s]) + " \u2014 frames " + commas(b * r.framesPerBucket) + "\u2013" +
        commas(Math.min((b + 1) * r.framesPerBucket, r.frames) - 1) + ": " + st;
      tip.style.display = "block";
      tip.style.left = Math.min(mx + 14, rect.width - 320) + "px";
      tip.style.top = (my + 14) + "px";
    };
    canvas.onmouseleave = function () { tip.style.display = "none"; };
  }

  // Frames per state over simulated time, stacked (free optional: it dwarfs the rest).
  function areas(i) {
    var r = D.runs[i], c = setup(document.getElementById("areas"), 300), ctx = c.ctx, n = r.simNs.length;
    var box = { x: 70, y: 10, w: c.w - 90, h: c.h - 44 };
    var shown = [];
    r.states.forEach(function (s, k) { if (s !== "free" || withFree.checked) shown.push(k); });
    var top = 1;
    for (var s = 0; s < n; s++) {
      var sum = 0;
      shown.forEach(function (k) { sum += r.counts[s][k]; });
      top = Math.max(top, sum);
    }
    var t0 = r.simNs[0] || 0, t1 = Math.max(r.simNs[n - 1] || 1, t0 + 1);
    var x = function (t) { return box.x + ((t - t0) / (t1 - t0)) * box.w; };
    var y = yAxis(ctx, box, 0, top * 1.05, withFree.checked ? "frames" : "frames in use");
    var base = new Array(n).fill(0);
    shown.forEach(function (k) {
      var next = base.map(function (v, s) { return v + r.counts[s][k]; });
      ctx.beginPath();
      for (var s = 0; s < n; s++) ctx.lineTo(x(r.simNs[s]), y(next[s]));
      for (var s2 = n - 1; s2 >= 0; s2--) ctx.lineTo(x(r.simNs[s2]), y(base[s2]));
      ctx.closePath(); ctx.fillStyle = color(r.states[k], k); ctx.fill();
      base = next;
    });
    ctx.strokeStyle = "#999"; ctx.strokeRect(box.x, box.y, box.w, box.h);
    timeAxis(ctx, box, x, t0, t1);
  }

  // Rates between consecutive samples, drawn as steps over each interval.
  function throughput(i) {
    var r = D.runs[i], n = r.simNs.length;
    var series = [
      { label: "ops / sim s", col: "#3b78d8", v: r.op },
      { label: "migrations / sim s", col: "#8e5ec9", v: r.migrated },
      { label: "CPU faults / sim s", col: "#e0701a", v: r.faults },
    ];
    var panel = 130, c = setup(document.getElementById("throughput"), series.length * panel + 30), ctx = c.ctx;
    var t0 = r.simNs[0] || 0, t1 = Math.max(r.simNs[n - 1] || 1, t0 + 1);
    series.forEach(function (sr, k) {
      var box = { x: 70, y: 10 + k * panel, w: c.w - 90, h: panel - 24 };
      var x = function (t) { return box.x + ((t - t0) / (t1 - t0)) * box.w; };
      var rates = [], top = 0, total = 0;
      for (var s = 1; s < n; s++) {
        var dt = r.simNs[s] - r.simNs[s - 1], rate = dt > 0 ? ((sr.v[s] - sr.v[s - 1]) / dt) * 1e9 : 0;
        rates.push(rate); top = Math.max(top, rate);
      }
      if (n > 1 && r.simNs[n - 1] > r.simNs[0]) total = ((sr.v[n - 1] - sr.v[0]) / (r.simNs[n - 1] - r.simNs[0])) * 1e9;
      var y = yAxis(ctx, box, 0, (top || 1) * 1.1, "");
      ctx.beginPath();
      for (var s3 = 1; s3 < n; s3++) {
        ctx.lineTo(x(r.simNs[s3 - 1]), y(rates[s3 - 1]));
        ctx.lineTo(x(r.simNs[s3]), y(rates[s3 - 1]));
      }
      ctx.strokeStyle = sr.col; ctx.lineWidth = 2; ctx.stroke();
      line(ctx, box.x, y(total), box.x + box.w, y(total), "#888", 1, [4, 3]);
      var label = sr.label + " (mean " + si(total) + ", dashed)";
      ctx.fillStyle = "rgba(255,255,255,0.85)";
      ctx.fillRect(box.x + 4, box.y + 4, ctx.measureText(label).width + 8, 15);
      text(ctx, label, box.x + 8, box.y + 6, "left", "top", sr.col);
      if (k === series.length - 1) timeAxis(ctx, box, x, t0, t1);
    });
  }

  // Latency histogram of one kind: log-scale time, bars span each bucket's edges.
  function latency(h) {
    var canvas = document.getElementById("latency-" + h.kind);
    if (!canvas) return;
    var c = setup(canvas, 240), ctx = c.ctx;
    var box = { x: 64, y: 26, w: c.w - 80, h: c.h - 60 };
    text(ctx, h.kind + " \u2014 " + commas(h.count) + " samples", box.x, 16, "left", "alphabetic", "#222");
    if (!h.buckets.length) { text(ctx, "no samples", box.x + box.w / 2, box.y + box.h / 2, "center", "middle", "#999"); return; }
    var lo = Math.log10(h.buckets[0][0]), hi = Math.log10(h.buckets[h.buckets.length - 1][1]);
    var pad = Math.max(0.15, (hi - lo) * 0.05); lo -= pad; hi += pad;
    var x = function (ns) { return box.x + ((Math.log10(ns) - lo) / (hi - lo)) * box.w; };
    var useLog = logCount.checked, top = 0;
    var val = function (cnt) { return useLog ? Math.log10(1 + cnt) : cnt; };
    h.buckets.forEach(function (b) { top = Math.max(top, val(b[2])); });
    // Log counts plot log10(1 + count), so an empty bucket sits at 0; ticks at powers of ten.
    var logTicks = [[0, "0"]];
    for (var p10 = top > 2.5 ? 10 : 1; Math.log10(1 + p10) <= top * 1.08; p10 *= 10) logTicks.push([Math.log10(1 + p10), si(p10)]);
    var y = yAxis(ctx, box, 0, top * 1.08 || 1, useLog ? "count (log)" : "count", useLog ? logTicks : null);
    ctx.fillStyle = "#3b78d8";
    h.buckets.forEach(function (b) {
      var x0 = x(b[0]), x1 = x(b[1]);
      ctx.fillRect(x0, y(val(b[2])), Math.max(1, x1 - x0 - 0.5), box.y + box.h - y(val(b[2])));
    });
    // Decades, and 2x / 5x between them when the range is narrow.
    var steps = hi - lo < 2.5 ? [1, 2, 5] : [1];
    for (var e = Math.floor(lo); e <= Math.ceil(hi); e++) {
      steps.forEach(function (m) {
        var v = m * Math.pow(10, e), lv = Math.log10(v);
        if (lv < lo || lv > hi) return;
        line(ctx, x(v), box.y + box.h, x(v), box.y + box.h + 4, "#999");
        text(ctx, dur(v), x(v), box.y + box.h + 6, "center", "top", "#555");
      });
    }
    text(ctx, "latency (log scale)", box.x + box.w / 2, box.y + box.h + 32, "center", "bottom", "#333");
    [["p50", h.p50, "#1a7f37"], ["p90", h.p90, "#e0701a"], ["p99", h.p99, "#c62828"]].forEach(function (p, k) {
      if (!(p[1] > 0)) return;
      line(ctx, x(p[1]), box.y, x(p[1]), box.y + box.h, p[2], 1.5, [5, 3]);
      var label = p[0] + " " + dur(p[1]), lw = ctx.measureText(label).width;
      ctx.fillStyle = "rgba(255,255,255,0.85)";
      ctx.fillRect(box.x + box.w - 8 - lw, box.y + 3 + k * 15, lw + 6, 14);
      text(ctx, label, box.x + box.w - 4, box.y + 4 + k * 15, "right", "top", p[2]);
    });
  }

  function current() { return sel ? Number(sel.value) : 0; }
  function drawRun() {
    var i = current();
    document.querySelectorAll("canvas.heatmap").forEach(function (cv) { cv.hidden = Number(cv.getAttribute("data-run")) !== i; });
    heatmap(i); areas(i); throughput(i);
  }
  function drawLatency() { D.latency.forEach(latency); }
  function drawAll() { if (D.runs.length) drawRun(); drawLatency(); }

  if (sel) sel.addEventListener("change", drawRun);
  if (withFree) withFree.addEventListener("change", function () { areas(current()); });
  if (logCount) logCount.addEventListener("change", drawLatency);
  var pending = 0;
  window.addEventListener("resize", function () { clearTimeout(pending); pending = setTimeout(drawAll, 100); });
  drawAll();
})();
`;
