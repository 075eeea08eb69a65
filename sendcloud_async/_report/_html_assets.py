"""What the report page holds besides its content: its stylesheet, its script, and the
Content-Security-Policy that lets the browser run exactly those and fetch nothing.

The stylesheet gives the light and the dark palette (``prefers-color-scheme``), the
print layout (A4, light, without the filter box and the drill-down rows) and the
drill-down rows shown while they are the page's target (``:target``). The script
sorts and filters the integrations table. Both are inline, allowed by their
SHA-256 (``content_policy``), so the page opens from disk, offline.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

__all__ = ["SCRIPT", "STYLE", "content_policy"]

STYLE: Final = """
:root{color-scheme:light dark;--bg:#fff;--fg:#1d1f21;--muted:#5f6670;--line:#dcdfe3;
--panel:#f4f5f7;--well:#eceef1;--accent:#2f6db5;--bad:#b3261e;--good:#1e7a46;
--c0:#2f6db5;--c1:#e69f00;--c2:#009e73;--c3:#cc79a7;--c4:#56b4e9;--c5:#d55e00;--c6:#9a8a00;
--c7:#9aa0a6}
@media (prefers-color-scheme:dark){:root{--bg:#16181b;--fg:#e4e6e9;--muted:#a0a6ad;
--line:#33373d;--panel:#1e2125;--well:#262a2f;--accent:#7fb0ff;--bad:#ff8a80;--good:#7ad79b;
--c0:#7fb0ff;--c1:#f0b43c;--c2:#3cc49a;--c3:#e39acb;--c4:#8fd0f5;--c5:#ff8a4c;--c6:#d4c43c;
--c7:#7d848c}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1200px;padding:24px;background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;
border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:14px;margin:12px 0 6px}
p{margin:4px 0}.muted,.sub{color:var(--muted)}.sub{margin-bottom:12px}
nav a{color:var(--accent);margin-right:12px;text-decoration:none}
a{color:var(--accent)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:10px;
margin:14px 0}
.card{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:10px 12px}
.card b{display:block;font-size:20px;font-variant-numeric:tabular-nums}
.card span{color:var(--muted);font-size:12px;overflow-wrap:anywhere}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:18px}
figure{margin:0;break-inside:avoid}figcaption{font-weight:600;margin:6px 0}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:var(--line);stroke-width:1}svg .axis{stroke:var(--muted);stroke-width:1}
svg .tick{fill:var(--muted);font-size:11px;font-family:inherit}
svg .hit{fill:transparent}svg .hit:hover{fill:var(--fg);fill-opacity:.07}
.c0{fill:var(--c0)}.c1{fill:var(--c1)}.c2{fill:var(--c2)}.c3{fill:var(--c3)}
.c4{fill:var(--c4)}.c5{fill:var(--c5)}.c6{fill:var(--c6)}.c7{fill:var(--c7)}
.well{fill:var(--well)}
.h1,.h2,.h3,.h4,.h5{fill:var(--accent)}.h1{fill-opacity:.18}.h2{fill-opacity:.36}
.h3{fill-opacity:.54}.h4{fill-opacity:.74}.h5{fill-opacity:.95}
.spark{fill:var(--accent);fill-opacity:.25;stroke:var(--accent);stroke-width:1}
svg.spark-box{width:120px;height:22px;display:block}
svg.meter{width:90px;height:10px;display:inline-block;vertical-align:middle;
background:var(--well)}
svg.swatch{width:10px;height:10px;display:inline-block;vertical-align:baseline;margin-right:4px}
.legend{list-style:none;padding:0;margin:4px 0 0;display:flex;flex-wrap:wrap;gap:4px 14px;
font-size:12px}
ul.findings{padding-left:18px;margin:4px 0}ul.findings li{margin:3px 0}
.none{color:var(--muted)}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:4px 6px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-weight:600;white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.t{white-space:nowrap;font-variant-numeric:tabular-nums}
td.v{word-break:break-word}code{font-size:12px}
table.top td.v code{white-space:pre-wrap}
#integrations thead th[data-k]{cursor:pointer}
#integrations thead th[aria-sort=ascending]::after{content:" \\25B2"}
#integrations thead th[aria-sort=descending]::after{content:" \\25BC"}
tr.more{display:none}tr.more:target{display:table-row}tr.more>td{background:var(--panel)}
[hidden]{display:none!important}
.up,.started_failing,.unusual,.rising{color:var(--bad)}
.down,.stopped_failing,.falling{color:var(--good)}
.tools{display:flex;gap:12px;align-items:center;margin:6px 0}
input[type=search]{font:inherit;padding:4px 8px;border:1px solid var(--line);border-radius:4px;
background:var(--bg);color:var(--fg);min-width:260px}
.detail{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:12px}
footer{margin-top:28px;font-size:12px;color:var(--muted)}
@page{size:A4;margin:12mm}
@media print{:root{--bg:#fff;--fg:#000;--muted:#444;--line:#bbb;--panel:#fff;--well:#eee;
--accent:#1f4f8f;--c0:#1f4f8f;--c7:#888}body{max-width:none;padding:0;font-size:10pt}
nav,.tools,tr.more,svg .hit{display:none!important}h2{break-after:avoid}
tr{break-inside:avoid}thead{display:table-header-group}.grid{grid-template-columns:1fr 1fr}
table{font-size:8.5pt}a{color:inherit;text-decoration:none}
#integrations td.t{white-space:normal}
#integrations tr>th:last-child,#integrations tr.row>td:last-child{display:none}}
"""

SCRIPT: Final = """
(function () {
  var table = document.getElementById("integrations");
  var body = table.tBodies[0];
  var input = document.getElementById("filter");
  var shown = document.getElementById("shown");
  function pairs() {
    var rows = body.rows, out = [];
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].classList.contains("row")) {
        var next = rows[i + 1];
        out.push([rows[i], next && next.classList.contains("more") ? next : null]);
      }
    }
    return out;
  }
  table.tHead.addEventListener("click", function (event) {
    var th = event.target.closest("th[data-k]");
    if (!th) return;
    var k = Number(th.dataset.k), numeric = th.classList.contains("n");
    var down = th.getAttribute("aria-sort") !== "descending";
    var all = pairs();
    all.sort(function (a, b) {
      var x = a[0].cells[k].dataset.v, y = b[0].cells[k].dataset.v;
      var c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return down ? -c : c;
    });
    var heads = table.tHead.querySelectorAll("th");
    for (var h = 0; h < heads.length; h++) heads[h].removeAttribute("aria-sort");
    th.setAttribute("aria-sort", down ? "descending" : "ascending");
    var frag = document.createDocumentFragment();
    all.forEach(function (p) { frag.appendChild(p[0]); if (p[1]) frag.appendChild(p[1]); });
    body.appendChild(frag);
  });
  input.addEventListener("input", function () {
    var q = input.value.trim().toLowerCase(), n = 0;
    pairs().forEach(function (p) {
      var hit = !q || p[0].dataset.s.indexOf(q) >= 0;
      p[0].hidden = !hit;
      if (p[1]) p[1].hidden = !hit;
      if (hit) n++;
    });
    shown.textContent = String(n);
  });
})();
"""


def _digest(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def content_policy() -> str:
    """The page's Content-Security-Policy: nothing but ``STYLE``, ``SCRIPT`` and data images."""
    return (
        f"default-src 'none'; style-src '{_digest(STYLE)}'; script-src '{_digest(SCRIPT)}'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
