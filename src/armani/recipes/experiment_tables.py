"""The Markdown tables of `armani experiment paper` (`table.md`), from its results.json and
summary.json: the part-control test with the arms' differences to the baseline, the
hold-out and the judge's gate (`part_table`), and the paper's Table 1 per arm (`table`).
"""
from __future__ import annotations

import numpy as np


def _fmt(v, ci=None, pct=False) -> str:
    if v is None:
        return "n/a"
    if pct:
        s = f"{100 * v:.1f}"
        return s + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")
    s = f"{v:.2f}" if abs(v) < 1000 else f"{v:.0f}"
    return s + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _ci(d: dict | None, pct: bool = True) -> str:
    if not d:
        return "n/a"
    return _fmt(d.get("effect"), d.get("ci95"), pct=pct)


def part_table(results: dict, variants: list[str], baseline: str) -> str:
    """Markdown: the part-control test (the primary table), the arms' differences to the
    baseline arm, the hold-out, and the judge's gate; arms in the order of `variants`."""
    arms = [v for v in variants if v in results]
    j = results.get("judge") or {}
    scored = j.get("scored_parts", [])
    st = results.get("settings", {})
    lines = ["## Part control", "",
             f"effect(p) = P(judge finds p | p named) - P(judge finds p | p not named), in points, on prompt pairs "
             f"from `val` garments whose category makes p optional ({st.get('pairs_per_part')} pairs per part, "
             f"{st.get('samples')} samples per caption, {st.get('size')} px), averaged over "
             f"{st.get('seeds')} stage-2 seeds per arm. Brackets: 95% bootstrap intervals over seeds and prompt "
             "pairs (1,000 resamples); differences to the baseline are paired (the same resamples for both arms). "
             f"Scored parts (judge balanced accuracy >= {j.get('part_gate')} on real images): "
             f"{', '.join(scored) or 'none'}.", ""]
    head = ["arm", "steps", "mean effect", "minus baseline"] + scored
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for v in arms:
        r = results[v]
        pc = r["part_control"]
        diff = _ci(r.get("vs_baseline", {}).get("part_control", {}).get("mean")) if v != baseline else "-"
        lines.append("| " + " | ".join([r["row"].split(" (")[0], "/".join(str(s) for s in r["steps"]),
                                        _ci(pc.get("mean")), diff] + [_ci(pc.get(p)) for p in scored]) + " |")
    lines += ["", "Beside it: category, colour and pattern accuracy (%) on the same images; the likelihood gap "
              "(nats per image: NLL of the real tokens of garments with p, caption without p minus with p); the "
              "hold-out (held-out category:part pairs, never together in training); the stage-1 ceiling (the judge's "
              "mean balanced accuracy over the scored parts on the arm's stage-1 reconstructions of `val`).", ""]
    head = ["arm", "category", "colour", "pattern", "likelihood gap", "gap minus baseline", "hold-out effect",
            "hold-out minus baseline", "stage-1 ceiling"]
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for v in arms:
        r = results[v]
        at, vb = r["attributes"], r.get("vs_baseline", {})
        ceiling = (r["stage1"].get("judge_ceiling") or {}).get("parts", {})
        cvals = [ceiling[p]["balanced_accuracy"] for p in scored if ceiling.get(p, {}).get("balanced_accuracy")]
        lines.append("| " + " | ".join([
            r["row"].split(" (")[0], _ci(at.get("category")), _ci(at.get("color")), _ci(at.get("pattern")),
            _ci(r["likelihood_gap"].get("mean"), pct=False),
            _ci(vb.get("likelihood_gap", {}).get("mean"), pct=False) if v != baseline else "-",
            _ci(r["holdout"].get("mean")), _ci(vb.get("holdout", {}).get("mean")) if v != baseline else "-",
            f"{100 * float(np.mean(cvals)):.1f}" if cvals else "n/a"]) + " |")
    held = sorted({k for v in arms for k in results[v]["holdout"] if k != "mean"})
    if held:
        lines += ["", "Hold-out per pair: effect of naming the part on the held-out category (the same part's effect "
                  "on categories seen with it in brackets after the slash).", ""]
        lines += ["| arm | " + " | ".join(held) + " |", "|" + " --- |" * (len(held) + 1)]
        for v in arms:
            h = results[v]["holdout"]
            cells = [(_ci(h[k]) + (f" / {100 * h[k]['seen']:.1f}" if h[k].get("seen") is not None else ""))
                     if k in h else "n/a" for k in held]
            lines.append(f"| {results[v]['row'].split(' (')[0]} | " + " | ".join(cells) + " |")
    if j:
        bal = {p: d.get("balanced_accuracy") for p, d in j.get("parts", {}).items()}
        split = j.get("split")
        split = "+".join(split) if isinstance(split, (list, tuple)) else split
        lines += ["", f"Judge on {j.get('samples')} real images (`{split}`): category "
                      f"{j['accuracy']['category']:.3f}, colour {j['accuracy']['color']:.3f}, pattern "
                      f"{j['accuracy']['pattern']:.3f}; parts by balanced accuracy: "
                  + ", ".join(f"{p} {b:.3f}" if b is not None else f"{p} n/a" for p, b in bal.items()) + "."]
    if not results.get("equal_steps", True):
        lines += ["", "**Warning: the arms did not all train the same number of steps.**"]
    return "\n".join(lines) + "\n"


def table(summary: dict, prompts: int, samples: int, rows: dict[str, str], modes: tuple[str, ...]) -> str:
    """Markdown: one row per arm (its seed-0 model; `rows`: arm -> row name, in order) for the
    generation modes among `modes` it was scored in: attribute accuracy (%), MaskCLIP score,
    FID, KID (x1000), IS, CLIPScore; the hold-out part's accuracy. 95% bootstrap intervals over
    prompts."""
    res = {k: v["modes"] for k, v in summary["results"].items() if isinstance(v, dict) and "modes" in v}
    if not res:
        return ""
    modes = [m for m in modes if m in next(iter(res.values()))]
    lines = ["## The paper's table (each arm's seed-0 model)", "",
             f"Prompts: {prompts} per mode (`val`; hold-out: `test_holdout`), {samples} sample(s) each, seed "
             f"{summary['settings']['seed']}. Brackets: 95% bootstrap intervals over prompts (1,000 resamples). "
             "attr: attribute accuracy (%) by the judge; MaskCLIP: the project's MaskCLIP score (not CLIPScore); "
             "n/a: unavailable; a metric unavailable for every model has no column (reasons below).", ""]
    head = ["model"]
    for t in modes:
        head += [f"{t} attr", f"{t} MaskCLIP", f"{t} FID", f"{t} KID x1e3", f"{t} IS", f"{t} CLIPScore"]
    head += ["hold-out part (%)"]

    def row(name: str, get) -> list[str]:
        cells = [name]
        for t in modes:
            r = get(t) or {}
            ci = r.get("ci95", {})
            kidv = r.get("kid")
            cells += [_fmt(r.get("attribute_accuracy"), ci.get("attribute_accuracy"), pct=True),
                      _fmt(r.get("maskclip_score"), ci.get("maskclip_score")), _fmt(r.get("fid")),
                      _fmt(None if kidv is None else 1000 * kidv), _fmt(r.get("is")),
                      _fmt(r.get("clipscore"), ci.get("clipscore"))]
        h = get("holdout") or {}
        cells.append(_fmt(h.get("holdout_part_accuracy"), h.get("ci95", {}).get("holdout_part_accuracy"), pct=True))
        return cells

    first = next(iter(res.values()), {})
    real = {k: {"attribute_accuracy": v["real_images"]["attribute_accuracy"],
                "maskclip_score": v["real_images"]["maskclip_score"],
                "holdout_part_accuracy": v["real_images"].get("holdout_part_accuracy")} for k, v in first.items()}
    cells = [row("real images (ceiling)", real.get)] + [row(name, res[k].get) for k, name in rows.items() if k in res]
    keep = [j for j in range(len(head)) if j == 0 or any(r[j] != "n/a" for r in cells[1:])]  # drop all-n/a columns
    lines += ["| " + " | ".join(head[j] for j in keep) + " |", "|" + " --- |" * len(keep)]
    lines += ["| " + " | ".join(r[j] for j in keep) + " |" for r in cells]
    reasons = {k: v for r in first.values() for k, v in r.get("unavailable", {}).items()}
    for k, why in sorted(reasons.items()):
        lines.append(f"- {k}: {why}")
    return "\n".join(lines) + "\n"
