"""The report page's own style and script, inlined into every report (allowed by their hashes in the CSP).

The script reads the model that ``faultspan.report.html.model`` builds and creates every element itself; text
from the package is only ever assigned with ``textContent`` or ``title``.
"""

STYLE = """
:root {
  --bg: #f5f6f8; --card: #ffffff; --text: #1d2330; --muted: #667085; --line: #e3e6eb; --code: #f3f4f6;
  --accent: #3358d4; --error: #c9372c; --error-soft: #fdecea; --bar: #8aa4f0; --current: #fff4c2;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #15171c; --card: #1e2128; --text: #e4e7ec; --muted: #98a2b3; --line: #2e323b; --code: #262a33;
    --accent: #8ea6ff; --error: #ff7b72; --error-soft: #3a1f1f; --bar: #4f67b8; --current: #4a3f12;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 16px 48px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px;
  margin-bottom: 16px; }
h1 { font-size: 20px; margin: 4px 0 12px; overflow-wrap: anywhere; white-space: pre-wrap; }
h2 { font-size: 15px; margin: 0 0 12px; text-transform: uppercase; letter-spacing: .04em;
  color: var(--muted); }
h3 { font-size: 15px; margin: 8px 0; overflow-wrap: anywhere; white-space: pre-wrap; }
.kind { color: var(--error); font-weight: 600; font-family: var(--mono); }
.muted { color: var(--muted); }
.badge { display: inline-block; font-size: 11px; padding: 1px 7px; border-radius: 9px;
  background: var(--code); color: var(--muted); margin-left: 6px; vertical-align: middle; }
.badge.warn { background: var(--error-soft); color: var(--error); }
.pairs { display: grid; grid-template-columns: fit-content(40%) minmax(0, 1fr); gap: 3px 14px;
  font-size: 13px; }
.pairs .key { color: var(--muted); overflow-wrap: anywhere; }
.pairs .value { font-family: var(--mono); white-space: pre-wrap; overflow-wrap: anywhere; }
.link { border-left: 3px solid var(--line); padding-left: 12px; margin: 12px 0; }
.link.reported { border-left-color: var(--error); }
.relation { font-size: 12px; text-transform: uppercase; color: var(--muted); letter-spacing: .04em; }
.notes { margin: 4px 0; padding-left: 18px; color: var(--muted); white-space: pre-wrap; }
details.frame { border: 1px solid var(--line); border-radius: 8px; margin: 6px 0; }
details.frame > summary { cursor: pointer; padding: 6px 10px; font-family: var(--mono); font-size: 13px;
  overflow-wrap: anywhere; }
details.frame.library > summary { color: var(--muted); }
.frame-body { padding: 0 10px 10px; }
pre.code { margin: 0 0 8px; background: var(--code); border-radius: 6px; padding: 6px 0; overflow-x: auto;
  font: 12.5px/1.55 var(--mono); }
pre.code .line { display: block; padding: 0 10px; white-space: pre; }
pre.code .line.here { background: var(--error-soft); }
pre.code .lineno { display: inline-block; min-width: 4ch; color: var(--muted); text-align: right;
  margin-right: 12px; user-select: none; }
.axis { position: relative; height: 34px; margin: 8px 8px 4px; border-bottom: 2px solid var(--line); }
.axis .dot { position: absolute; bottom: -7px; width: 12px; height: 12px; margin-left: -6px;
  border-radius: 50%; background: var(--accent); border: 2px solid var(--card); }
.axis .dot.alert { background: var(--error); }
.axis .dot.after { background: var(--card); border-color: var(--muted); }
.axis .failure { position: absolute; bottom: -2px; height: 36px; margin-left: -1px;
  border-left: 2px solid var(--error); }
.axis .failure span { position: absolute; left: 4px; top: -2px; font-size: 11px; color: var(--error);
  white-space: nowrap; }
.axis .failure.at-end span { left: auto; right: 4px; }
.axis-labels { display: flex; justify-content: space-between; font-size: 11px; color: var(--muted);
  margin: 0 8px 12px; }
table.crumbs { border-collapse: collapse; width: 100%; font-size: 13px; }
table.crumbs td { border-top: 1px solid var(--line); padding: 4px 8px 4px 0; vertical-align: top;
  white-space: pre-wrap; overflow-wrap: anywhere; }
table.crumbs td.when { font-family: var(--mono); color: var(--muted); white-space: nowrap; }
table.crumbs td.level, table.crumbs td.category { white-space: nowrap; }
table.crumbs td.data { font-family: var(--mono); color: var(--muted); }
table.crumbs tr.after td { color: var(--muted); }
table.crumbs tr.failure-row td { border-top: 2px solid var(--error); color: var(--error); font-size: 12px;
  font-weight: 600; }
details.repeated > summary, details.library-run > summary { cursor: pointer; padding: 2px 10px;
  color: var(--muted); font-size: 13px; }
details.repeated[open], details.library-run[open] { border-left: 2px solid var(--line); padding-left: 8px; }
.omitted { margin: 6px 0; padding: 4px 10px; border: 1px dashed var(--muted); border-radius: 8px;
  color: var(--muted); font-size: 13px; }
pre.body { margin: 0; background: var(--code); border-radius: 6px; padding: 6px 10px; white-space: pre-wrap;
  overflow-wrap: anywhere; font: 12.5px/1.55 var(--mono); }
.scale { display: grid; grid-template-columns: 34% 1fr 90px; font-size: 11px; color: var(--muted); }
.scale .ends { display: flex; justify-content: space-between; }
details.span > summary { display: grid; grid-template-columns: 34% 1fr 90px; align-items: center;
  cursor: pointer; padding: 2px 0; list-style: none; border-radius: 4px; }
details.span > summary::-webkit-details-marker { display: none; }
details.span > summary:hover { background: var(--code); }
details.span.failing > summary { background: var(--error-soft); }
.span-name { min-width: 0; font-family: var(--mono); font-size: 12.5px; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; padding-right: 8px; }
.track { position: relative; height: 18px; }
.bar { position: absolute; top: 3px; height: 12px; min-width: 2px; border-radius: 3px;
  background: var(--bar); }
.bar.error { background: var(--error); opacity: .75; }
.bar.failing { background: var(--error); opacity: 1; box-shadow: 0 0 0 2px var(--error-soft); }
.tick { position: absolute; top: 0; width: 2px; height: 18px; margin-left: -1px; background: var(--muted); }
.tick.exception { background: var(--error); width: 3px; }
.duration { font-family: var(--mono); font-size: 12px; color: var(--muted); text-align: right; }
.span-attributes { padding: 4px 0 8px 24px; }
.stepper-controls { display: flex; align-items: center; gap: 10px; margin-bottom: 10px; }
button { font: inherit; padding: 4px 12px; border-radius: 6px; border: 1px solid var(--line);
  background: var(--card); color: var(--text); cursor: pointer; }
button:hover:not(:disabled) { border-color: var(--accent); }
button:disabled { opacity: .45; cursor: default; }
#step-position { font-family: var(--mono); min-width: 8ch; text-align: center; }
.step-where { font-family: var(--mono); font-size: 13px; color: var(--muted); overflow-wrap: anywhere; }
ol.steps { position: relative; list-style: none; margin: 10px 0 0; padding: 6px 0; max-height: 260px;
  overflow: auto; background: var(--code); border-radius: 6px; font: 12.5px/1.55 var(--mono); }
ol.steps li { padding: 0 10px; white-space: pre; cursor: pointer; }
ol.steps li.current { background: var(--current); }
"""

SCRIPT = r"""
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("faultspan-data").textContent);
  const root = document.getElementById("report");
  root.textContent = "";

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function add(parent, ...children) {
    for (const child of children) parent.appendChild(child);
    return parent;
  }
  function put(parent, child) {
    parent.appendChild(child);
    return child;
  }
  function section(id, title) {
    const node = el("section", "card");
    node.id = id;
    add(root, add(node, el("h2", "", title)));
    return node;
  }
  function duration(ms) {
    const size = Math.abs(ms);
    if (size >= 1000) return (ms / 1000).toFixed(3) + " s";
    if (size >= 1) return ms.toFixed(size >= 100 ? 0 : 2) + " ms";
    return (ms * 1000).toFixed(0) + " \u00b5s";
  }
  function pairs(rows, className) {
    const grid = el("div", "pairs " + (className || ""));
    for (const [key, value] of rows) add(grid, el("div", "key", key), el("div", "value", value));
    return grid;
  }
  function codeLine(lineno, text, here) {
    return add(el("span", here ? "line here" : "line"), el("span", "lineno", lineno === null ? "" : lineno),
      document.createTextNode(text));
  }

  function header() {
    const card = put(root, el("header", "card"));
    add(card, el("div", "kind", data.exception.type), el("h1", "message", data.exception.message));
    add(card, pairs(data.summary, "summary"));
    if (data.truncated) add(card, el("span", "badge warn", "package truncated: some spans were dropped"));
  }

  function frame(info) {
    const node = el("details", "frame" + (info.in_app ? "" : " library"));
    node.open = info.in_app;
    const summary = put(node, el("summary", "", info.function + "  \u2014  " + info.filename +
      (info.lineno === null ? "" : ":" + info.lineno)));
    if (!info.in_app) add(summary, el("span", "badge", "library"));
    const body = put(node, el("div", "frame-body"));
    if (info.context_line || info.pre_context.length || info.post_context.length) {
      const code = put(body, el("pre", "code"));
      const first = info.lineno === null ? null : info.lineno - info.pre_context.length;
      const number = (offset) => (first === null ? null : first + offset);
      info.pre_context.forEach((text, i) => add(code, codeLine(number(i), text, false)));
      add(code, codeLine(info.lineno, info.context_line, true));
      info.post_context.forEach((text, i) => add(code, codeLine(number(info.pre_context.length + 1 + i), text,
        false)));
    }
    if (info.locals.length) add(body, pairs(info.locals, "locals"));
    else add(body, el("div", "muted", "no locals captured"));
    return node;
  }

  function samePlace(one, other) {
    return one.filename === other.filename && one.lineno === other.lineno && one.function === other.function;
  }

  function chain() {
    const card = section("chain", "Exception");
    data.chain.forEach((link, index) => {
      const node = put(card, el("div", index === 0 ? "link reported" : "link"));
      node.style.marginLeft = Math.min(link.depth, 8) * 20 + "px";
      if (link.relation) add(node, el("div", "relation", link.relation));
      add(node, add(el("h3"), el("span", "kind", link.type), document.createTextNode(": " + link.message)));
      if (link.notes.length) {
        const notes = put(node, el("ul", "notes"));
        for (const note of link.notes) add(notes, el("li", "", note));
      }
      if (link.truncated) add(node, el("span", "badge warn", "chain truncated"));
      const gap = el("div", "omitted", link.omitted + " frame" + (link.omitted === 1 ? "" : "s") +
        " omitted here (OTEL_PYTHON_FAULTSPAN_MAX_FRAMES)");
      const frames = link.frames;
      const last = frames.length - 1;
      const someInApp = frames.some((info) => info.in_app);
      // Runs fold into a closed block, never across the gap nor over the innermost frame: library frames
      // between in-app ones, and a frame repeated in a row (recursion) after its first time.
      const runEnd = (start, belongs) => {
        let end = start + 1;
        while (end < last && end !== link.omitted_at && belongs(frames[end])) end++;
        return end;
      };
      const fold = (label, infos) => {
        const block = put(node, el("details", label[0]));
        add(block, el("summary", "", label[1]));
        for (const info of infos) add(block, frame(info));
      };
      let start = 0;
      while (start < frames.length) {
        if (start === link.omitted_at) add(node, gap);
        const first = frames[start];
        let end = someInApp && !first.in_app && start < last ? runEnd(start, (info) => !info.in_app) : start;
        if (end - start > 1) {
          fold(["library-run", end - start + " library frames"], frames.slice(start, end));
        } else {
          end = runEnd(start, (info) => samePlace(info, first));
          add(node, frame(first));
          const count = end - start - 1;
          const times = count + " more time" + (count === 1 ? "" : "s");
          if (count) fold(["repeated", "the frame above repeated " + times], frames.slice(start + 1, end));
        }
        start = end;
      }
      if (link.omitted_at !== null && link.omitted_at >= frames.length) add(node, gap);
    });
  }

  function request() {
    const card = section("request", "Request");
    add(card, pairs(data.request.facts, "request-facts"));
    const headers = data.request.headers;
    if (headers.length) add(card, el("h3", "", "Headers"), pairs(headers, "headers"));
    if (data.request.body) add(card, el("h3", "", "Body"), el("pre", "body", data.request.body));
    add(card, el("div", "muted", "from the span " + data.request.span));
  }

  function breadcrumbs() {
    const card = section("breadcrumbs", "Breadcrumbs");
    const crumbs = data.breadcrumbs;
    if (!crumbs.length) {
      add(card, el("div", "muted", "No breadcrumbs were recorded."));
      return;
    }
    const earliest = Math.min(0, ...crumbs.map((crumb) => crumb.offset_ms));
    const latest = Math.max(0, ...crumbs.map((crumb) => crumb.offset_ms));
    const span = latest - earliest || 1;
    const where = (offset) => ((offset - earliest) / span) * 100;
    const axis = put(card, el("div", "axis"));
    const failure = put(axis, add(el("div", "failure"), el("span", "", "failure")));
    failure.style.left = where(0) + "%";
    failure.classList.toggle("at-end", where(0) > 80);
    for (const crumb of crumbs) {
      const dot = put(axis, el("div", crumb.before ? "dot before" : "dot after"));
      dot.classList.toggle("alert", crumb.level === "warning" || crumb.level === "error");
      dot.style.left = where(crumb.offset_ms) + "%";
      dot.title = (crumb.before ? "before" : "after") + " the failure: " + duration(crumb.offset_ms) + "  " +
        crumb.category + ": " + crumb.message;
    }
    const before = crumbs.filter((crumb) => crumb.before).length;
    add(card, add(el("div", "axis-labels"), el("span", "", duration(earliest)),
      el("span", "", before + " before the failure, " + (crumbs.length - before) + " after"),
      el("span", "", latest > 0 ? "+" + duration(latest) : "0 (failure)")));
    const table = put(card, el("table", "crumbs"));
    const failureRow = () => {
      put(put(table, el("tr", "failure-row")), el("td", "", "failure")).colSpan = 5;
    };
    crumbs.forEach((crumb, index) => {
      if (index === before) failureRow();
      const data_text = crumb.data.map(([key, value]) => key + "=" + value).join("  ");
      add(table, add(el("tr", crumb.before ? "crumb before" : "crumb after"),
        el("td", "when", (crumb.offset_ms > 0 ? "+" : "") + duration(crumb.offset_ms)),
        add(el("td", "level"), el("span", "badge", crumb.level)),
        el("td", "category", crumb.category),
        el("td", "message", crumb.message),
        el("td", "data", data_text)));
    });
    if (before === crumbs.length) failureRow();
  }

  function waterfall() {
    const card = section("waterfall", "Spans");
    const total = data.waterfall.total_ms || 1;
    add(card, add(el("div", "scale"), el("span", "", "span"),
      add(el("div", "ends"), el("span", "", "0"), el("span", "", duration(data.waterfall.total_ms))),
      el("span")));
    for (const row of data.waterfall.spans) {
      const node = put(card, el("details", "span" + (row.failing ? " failing" : "")));
      const summary = put(node, el("summary"));
      const name = put(summary, el("div", "span-name", row.name));
      name.style.paddingLeft = Math.min(row.depth, 20) * 14 + "px";
      name.title = row.name;
      const track = put(summary, el("div", "track"));
      const bar = put(track, el("div", "bar"));
      bar.classList.toggle("error", row.error);
      bar.classList.toggle("failing", row.failing);
      bar.style.left = (row.offset_ms / total) * 100 + "%";
      bar.style.width = (row.duration_ms / total) * 100 + "%";
      bar.title = row.name + "  " + duration(row.duration_ms);
      for (const event of row.events) {
        const tick = put(track, el("div", "tick " + (event.name === "exception" ? "exception" : "")));
        tick.style.left = (event.offset_ms / total) * 100 + "%";
        tick.title = event.name + " at " + duration(event.offset_ms);
      }
      add(summary, el("div", "duration", duration(row.duration_ms)));
      add(node, add(el("div", "span-attributes"),
        row.attributes.length ? pairs(row.attributes, "attributes") : el("div", "muted", "no attributes")));
    }
  }

  function runtime() {
    const card = section("runtime", "Runtime");
    add(card, pairs(data.runtime.facts, "facts"));
    if (data.runtime.resource.length) add(card, el("h3", "", "Resource"), pairs(data.runtime.resource));
    const replay = data.replay.replayable
      ? "replayable: " + data.replay.callable
      : "not replayable: " + data.replay.reason;
    add(card, el("h3", "", "Replay"), el("div", "replay", replay));
    const distributions = data.runtime.distributions;
    if (distributions.length) {
      const more = put(card, el("details"));
      add(more, el("summary", "", distributions.length + " installed distributions"), pairs(distributions));
    }
  }

  function recording() {
    const lines = data.recording.lines;
    const card = section("recording", "Recorded execution");
    if (!lines.length) {
      add(card, el("div", "muted", "The recording holds no lines."));
      return;
    }
    const controls = put(card, el("div", "stepper-controls"));
    const previous = put(controls, el("button", "", "\u2190 Previous"));
    previous.id = "step-prev";
    const position = put(controls, el("span"));
    position.id = "step-position";
    const next = put(controls, el("button", "", "Next \u2192"));
    next.id = "step-next";
    add(controls, el("span", "muted", "or use the \u2190 \u2192 keys"));
    if (data.recording.truncated) {
      add(controls, el("span", "badge warn", "truncated at " + data.recording.limit + " lines"));
    }
    const where = put(card, el("div", "step-where"));
    const code = put(card, el("pre", "code"));
    code.id = "step-source";
    const changed = put(card, el("div"));
    changed.id = "step-locals";
    const list = put(card, el("ol", "steps"));
    const items = lines.map((line, index) => {
      const item = put(list, el("li", "", String(line.lineno).padStart(5) + "  " + line.source));
      item.addEventListener("click", () => show(index));
      return item;
    });
    let current = 0;
    function show(index) {
      current = Math.max(0, Math.min(lines.length - 1, index));
      const line = lines[current];
      position.textContent = current + 1 + " / " + lines.length;
      where.textContent = line.filename + ":" + line.lineno + " in " + line.function +
        (line.time === null ? "" : "  (+" + duration(line.time * 1000) + ")");
      code.textContent = "";
      add(code, codeLine(line.lineno, line.source, true));
      changed.textContent = "";
      const none = el("div", "muted", "no locals changed");
      add(changed, line.locals.length ? pairs(line.locals, "locals") : none);
      items.forEach((item, i) => item.classList.toggle("current", i === current));
      const item = items[current];
      if (item.offsetTop < list.scrollTop) list.scrollTop = item.offsetTop;
      const bottom = item.offsetTop + item.offsetHeight - list.clientHeight;
      if (bottom > list.scrollTop) list.scrollTop = bottom;
      previous.disabled = current === 0;
      next.disabled = current === lines.length - 1;
    }
    previous.addEventListener("click", () => show(current - 1));
    next.addEventListener("click", () => show(current + 1));
    document.addEventListener("keydown", (event) => {
      const moves = { ArrowLeft: -1, ArrowRight: 1 };
      if (!(event.key in moves) || event.altKey || event.ctrlKey || event.metaKey) return;
      event.preventDefault();
      show(current + moves[event.key]);
    });
    show(0);
  }

  header();
  chain();
  if (data.request) request();
  if (data.recording) recording();
  breadcrumbs();
  waterfall();
  runtime();
})();
"""
