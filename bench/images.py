#!/usr/bin/env python3
"""bench/images.py: the images of bench/RESULTS.md, as plain SVG (no plotting library).

  images.py chain OUT.svg HYPERFINE.json...   one box per command of the hyperfine exports
                                               (rounds of one comparison are merged by name):
                                               median, 25th-75th percentile box, 5th-95th whiskers
  images.py scale OUT.svg SCALE.json [LABEL=SCALE.json...]
                                               containers up over time after the launch, and
                                               chains gone over time after SIGKILL (bench/scale.py)
"""

import json
import sys
from html import escape

W, H = 760, 0  # width; height depends on the figure
FONT = 'font-family="sans-serif" font-size="12"'
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def percentile(values, q):
    values = sorted(values)
    if not values:
        return 0.0
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def svg(width, height, body):
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">\n<rect width="100%" height="100%" fill="white"/>\n'
        + "\n".join(body)
        + "\n</svg>\n"
    )


def text(x, y, s, anchor="start", extra=""):
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {FONT} {extra}>{escape(s)}</text>'


def nice_step(span, ticks=6):
    raw = span / ticks
    for step in [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500]:
        if step >= raw:
            return step
    return raw


def chain_figure(out, paths):
    times = {}
    for path in paths:
        with open(path) as f:
            for r in json.load(f)["results"]:
                name = r.get("command")
                times.setdefault(name, []).extend(t * 1000 for t in r["times"])
    names = sorted(times, key=lambda n: percentile(times[n], 0.5))
    left, right, row = 330, 40, 34
    height = 70 + row * len(names) + 40
    top = max(percentile(v, 0.95) for v in times.values()) * 1.1
    scale = (W - left - right) / top
    body = [text(10, 22, "Wall time per run (ms): median, 25–75 % box, 5–95 % whiskers", extra='font-weight="bold"')]
    step = nice_step(top)
    tick = 0.0
    axis_y = 50 + row * len(names)
    while tick <= top:
        x = left + tick * scale
        body.append(f'<line x1="{x:.1f}" y1="40" x2="{x:.1f}" y2="{axis_y}" stroke="#ddd"/>')
        body.append(text(x, axis_y + 16, f"{tick:g}", "middle"))
        tick += step
    for i, name in enumerate(names):
        v = times[name]
        y = 50 + row * i + row / 2
        p5, p25, p50, p75, p95 = (percentile(v, q) for q in (0.05, 0.25, 0.5, 0.75, 0.95))
        colour = COLOURS[i % len(COLOURS)]
        label = name if len(name) < 48 else name[:45] + "…"
        body.append(text(left - 8, y + 4, label, "end"))
        body.append(f'<line x1="{left + p5 * scale:.1f}" y1="{y:.1f}" x2="{left + p95 * scale:.1f}" y2="{y:.1f}" stroke="{colour}"/>')
        body.append(
            f'<rect x="{left + p25 * scale:.1f}" y="{y - 9:.1f}" width="{max(1, (p75 - p25) * scale):.1f}" '
            f'height="18" fill="{colour}" fill-opacity="0.35" stroke="{colour}"/>'
        )
        body.append(f'<line x1="{left + p50 * scale:.1f}" y1="{y - 11:.1f}" x2="{left + p50 * scale:.1f}" y2="{y + 11:.1f}" stroke="{colour}" stroke-width="3"/>')
        body.append(text(left + p95 * scale + 6, y + 4, f"{p50:.2f}", extra='fill="#444"'))
    body.append(text(left + (W - left - right) / 2, axis_y + 34, "milliseconds", "middle"))
    with open(out, "w") as f:
        f.write(svg(W, height, body))


def scale_figure(out, specs):
    runs = []
    for spec in specs:
        label, _, path = spec.rpartition("=")
        with open(path) as f:
            data = json.load(f)
        runs.append((label or f"N={data['n']}", data))
    height = 340
    left, right, top_pad, bottom = 60, 30, 40, 50
    panel_w = (W - left - right - 60) / 2
    body = [text(10, 22, "Containers up after the launch, and chains gone after SIGKILL", extra='font-weight="bold"')]
    # the issue 14 targets at N=1000 (up <= 8 s, gone <= 5 s), drawn as dashed lines
    targets = [("up_curve", "up (s after the launch)", 8.0), ("gone_curve", "gone (s after SIGKILL)", 5.0)]
    for p, (key, title, target) in enumerate(targets):
        x0 = left + p * (panel_w + 60)
        curves = [(label, d.get(key) or []) for label, d in runs]
        n_max = max([d["n"] for _, d in runs] + [1])
        t_max = max([pt[1] for _, c in curves for pt in c] + [target, 1.0]) * 1.05
        sx = panel_w / t_max
        sy = (height - top_pad - bottom) / n_max
        y_base = height - bottom
        body.append(f'<rect x="{x0}" y="{top_pad}" width="{panel_w:.1f}" height="{height - top_pad - bottom}" fill="none" stroke="#999"/>')
        body.append(text(x0 + panel_w / 2, height - 12, title, "middle"))
        step = nice_step(t_max, 5)
        tick = 0.0
        while tick <= t_max:
            x = x0 + tick * sx
            body.append(f'<line x1="{x:.1f}" y1="{top_pad}" x2="{x:.1f}" y2="{y_base}" stroke="#eee"/>')
            body.append(text(x, y_base + 15, f"{tick:g}", "middle"))
            tick += step
        if n_max == 1000:
            x = x0 + target * sx
            body.append(f'<line x1="{x:.1f}" y1="{top_pad}" x2="{x:.1f}" y2="{y_base}" stroke="#555" stroke-dasharray="4,3"/>')
            body.append(text(x + 3, top_pad + 12, f"target {target:g} s", extra='fill="#555"'))
        for k in range(0, 5):
            n = n_max * k / 4
            y = y_base - n * sy
            body.append(text(x0 - 5, y + 4, f"{n:.0f}", "end"))
        for i, (label, curve) in enumerate(curves):
            colour = COLOURS[i % len(COLOURS)]
            points = [(0.0, 0)] + [(pt[1], pt[0]) for pt in curve]
            path = " ".join(f"{x0 + t * sx:.1f},{y_base - n * sy:.1f}" for t, n in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            if p == 0:
                body.append(f'<line x1="{x0 + 10}" y1="{top_pad + 16 + 16 * i}" x2="{x0 + 30}" y2="{top_pad + 16 + 16 * i}" stroke="{colour}" stroke-width="2"/>')
                body.append(text(x0 + 35, top_pad + 20 + 16 * i, label))
    with open(out, "w") as f:
        f.write(svg(W, height, body))


def main():
    if len(sys.argv) < 4 or sys.argv[1] not in ("chain", "scale"):
        sys.exit(__doc__)
    kind, out, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
    (chain_figure if kind == "chain" else scale_figure)(out, inputs)


if __name__ == "__main__":
    main()
