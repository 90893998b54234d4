"""The dashboard and cleaner pages: a static shell, one bundled script, and server-rendered fragments.

The shell (`/`, `/cleaner`) holds no data. Its script (`/ui/app.js`, no CDN) asks for an API token once, keeps
it in `sessionStorage` (gone when the tab closes), and fetches the page's fragment with an `Authorization:
Bearer` header every 10 s; snapshots are fetched the same way and shown as blob URLs, since an `<img src>` cannot
carry the header. The fragments are rendered here from the cases the caller may read, with every value
HTML-escaped; a Content-Security-Policy allows only this script.
"""

from __future__ import annotations

import html

from gridwatch.central.views import TABLE_COLUMNS, CaseRow, table_cells

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
SVG_W, SVG_H, PAD = 720, 480, 40
CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' blob:; "
    "style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
STYLE = (
    "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}.card{border:1px solid #ccc;margin:.5em 0;"
    "padding:.5em}.card img{max-width:100%;display:block}#who{float:right;font-size:13px}"
)


def _projector(rows: list[CaseRow]) -> tuple[float, float, float, float]:
    """Bounds (lat0, lat1, lon0, lon1) of the located cases, padded so one point is not a zero-size box."""
    lats = [r.lat for r in rows if r.lat is not None]
    lons = [r.lon for r in rows if r.lon is not None]
    lat0, lat1, lon0, lon1 = min(lats), max(lats), min(lons), max(lons)
    pad_lat, pad_lon = max((lat1 - lat0) * 0.1, 1e-4), max((lon1 - lon0) * 0.1, 1e-4)
    return lat0 - pad_lat, lat1 + pad_lat, lon0 - pad_lon, lon1 + pad_lon


def svg_map(rows: list[CaseRow]) -> str:
    """An SVG scatter of the located cases (x = lon, y = lat, equirectangular), one colour per grid cell,
    with each cell's extent drawn as a dashed box labelled with its code."""
    located = [r for r in rows if r.lat is not None and r.lon is not None]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_W}" height="{SVG_H}" role="img">']
    parts.append(f'<rect width="{SVG_W}" height="{SVG_H}" fill="#f7f7f2" stroke="#999"/>')
    if not located:
        parts.append(f'<text x="{PAD}" y="{SVG_H // 2}">no located cases</text></svg>')
        return "".join(parts)
    lat0, lat1, lon0, lon1 = _projector(located)

    def xy(lat: float, lon: float) -> tuple[float, float]:
        x = PAD + (lon - lon0) / (lon1 - lon0) * (SVG_W - 2 * PAD)
        y = SVG_H - PAD - (lat - lat0) / (lat1 - lat0) * (SVG_H - 2 * PAD)
        return round(x, 1), round(y, 1)

    cells = sorted({r.grid_cell or "-" for r in located})
    colour = {cell: PALETTE[i % len(PALETTE)] for i, cell in enumerate(cells)}
    for cell in cells:
        members = [xy(r.lat, r.lon) for r in located if (r.grid_cell or "-") == cell]  # type: ignore[arg-type]
        xs, ys = [p[0] for p in members], [p[1] for p in members]
        x, y, w, h = min(xs) - 12, min(ys) - 12, max(xs) - min(xs) + 24, max(ys) - min(ys) + 24
        parts.append(
            f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="none" stroke="{colour[cell]}" '
            f'stroke-dasharray="4 3"/><text x="{x}" y="{y - 3}" font-size="11" fill="{colour[cell]}">'
            f"grid {html.escape(cell)}</text>"
        )
    for r in located:
        x, y = xy(r.lat, r.lon)  # type: ignore[arg-type]
        title = html.escape(f"{r.case_number} {r.type} {r.status} ({r.lat:.6f}, {r.lon:.6f})")
        parts.append(
            f'<circle cx="{x}" cy="{y}" r="6" fill="{colour[r.grid_cell or "-"]}" class="case">'
            f"<title>{title}</title></circle>"
        )
    parts.append(
        f'<text x="{PAD}" y="{SVG_H - 8}" font-size="11">lon {lon0:.5f} .. {lon1:.5f}, '
        f"lat {lat0:.5f} .. {lat1:.5f} (WGS-84)</text></svg>"
    )
    return "".join(parts)


def dashboard_fragment(rows: list[CaseRow]) -> str:
    """The dashboard's content: map and table of the cases the caller may read."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in TABLE_COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in table_cells(r)) + "</tr>" for r in rows)
    return (
        f"<h1>gridwatch cases ({len(rows)})</h1>{svg_map(rows)}"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def cleaner_fragment(rows: list[CaseRow], name: str, snapshots: bool) -> str:
    """The cleaner page's content: one card per case, newest first, with its snapshot when allowed."""
    cards = []
    for row in reversed(rows):
        where = "no location" if row.lat is None or row.lon is None else f"{row.lat:.6f}, {row.lon:.6f}"
        image = (
            f'<img alt="snapshot" data-src="/cases/{html.escape(row.case_number)}/snapshot.jpg">'
            if snapshots and row.snapshot_path
            else ""
        )
        cards.append(
            f'<div class="card"><b>{html.escape(row.case_number)}</b> {html.escape(row.type)} '
            f"({html.escape(row.status)})<br>grid {html.escape(row.grid_cell or '-')} · {html.escape(where)} · "
            f"since {row.started_at:%Y-%m-%d %H:%M}Z{image}</div>"
        )
    return f"<h1>cases for {html.escape(name)} ({len(rows)})</h1>" + ("".join(cards) or "<p>no cases</p>")


def shell(title: str, fragment_url: str) -> str:
    """A page without data: the sign-in form, an empty container and the script that fills it."""
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="referrer" content="no-referrer"><style>{STYLE}</style></head><body>'
        '<div id="who"></div><form id="login" hidden><label>API token '
        '<input id="token" type="password" autocomplete="off" required></label> <button>Sign in</button> '
        '<span id="error"></span></form>'
        f'<main id="content" data-src="{html.escape(fragment_url)}"></main>'
        '<script src="/ui/app.js"></script></body></html>'
    )


APP_JS = """\
"use strict";
// gridwatch pages: the API token lives in sessionStorage and goes out only as an Authorization header.
const KEY = "gridwatch.api-token";
const main = document.getElementById("content");
const form = document.getElementById("login");
const input = document.getElementById("token");
const who = document.getElementById("who");
let snapshots = new Map();  // snapshot URL -> blob URL: each image is fetched once per sign-in

function token() { return sessionStorage.getItem(KEY); }

function signIn(message) {
  sessionStorage.removeItem(KEY);
  snapshots.forEach((blob) => URL.revokeObjectURL(blob));
  snapshots = new Map();
  main.textContent = "";
  who.textContent = "";
  document.getElementById("error").textContent = message || "";
  form.hidden = false;
}

async function get(path) {
  const response = await fetch(path, {headers: {Authorization: "Bearer " + token()}, cache: "no-store"});
  if (response.status === 401) {
    const body = await response.json().catch(() => ({}));
    signIn(body.detail || "token refused");
    throw new Error("401");
  }
  return response;
}

async function showSnapshots() {
  for (const img of main.querySelectorAll("img[data-src]")) {
    if (!snapshots.has(img.dataset.src)) {
      const response = await get(img.dataset.src);
      if (!response.ok) { continue; }
      snapshots.set(img.dataset.src, URL.createObjectURL(await response.blob()));
    }
    img.src = snapshots.get(img.dataset.src);
  }
}

async function refresh() {
  if (!token()) { signIn(""); return; }
  try {
    if (!who.textContent) {
      const me = await get("/me");
      if (me.ok) { const user = await me.json(); who.textContent = user.name + " (" + user.role + ")"; }
    }
    const response = await get(main.dataset.src);
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      main.textContent = body.detail || response.statusText;
      return;
    }
    main.innerHTML = await response.text();  // server-rendered, every value escaped
    await showSnapshots();
  } catch (error) {
    if (error.message !== "401") { main.textContent = "cannot reach the API: " + error.message; }
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, input.value.trim());
  input.value = "";
  form.hidden = true;
  refresh();
});
setInterval(() => { if (token()) { refresh(); } }, 10000);
refresh();
"""
