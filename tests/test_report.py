"""The quickstart's report and the model card's summary: headline figures against their
references (far ones flagged), one training curve per run, the figures grouped by stage."""
import json

from armani.report.html import quickstart_page
from armani.report.summary import curve_svg, headlines, round_figure, trend


def _far(measured):
    return {h.figure: h.far for h in headlines(measured)}


def test_a_figure_far_from_its_reference_is_flagged():
    weak = _far({"maskclip": {"pointing_accuracy": 0.30, "pointing_chance": 0.229},
                 "segmenter": {"miou": 0.287},
                 "transformer": {"none": 1.80, "text": 1.79, "text+sketch": 1.789},
                 "fidelity": {"sketch.silhouette_iou": 0.74, "text.silhouette_iou": 0.73,
                              "partial.kept_psnr": 18.5, "partial.kept_psnr.ceiling": 20.5}})
    good = _far({"maskclip": {"pointing_accuracy": 0.75, "pointing_chance": 0.229},
                 "segmenter": {"miou": 0.81},
                 "transformer": {"none": 1.80, "text": 1.70, "text+sketch": 1.60},
                 "fidelity": {"sketch.silhouette_iou": 0.83, "text.silhouette_iou": 0.73,
                              "partial.kept_psnr": 20.5, "partial.kept_psnr.ceiling": 20.5}})
    assert set(weak) == set(good) and len(weak) == 6
    assert all(weak.values()) and not any(good.values())
    assert headlines({}) == [] and headlines({"vqgan": {"psnr": float("nan")}}) == []


def test_trend_and_rounding():
    assert trend([5, 4, 3, 2, 1.5, 1.2, 1.0, 0.8]).startswith("still falling")
    assert trend([1.0] * 8).startswith("flat")
    assert trend([1.0, 2.0]).startswith("too few")
    assert round_figure("psnr", 22.2087) == "22.2" and round_figure("codebook_usage", 0.9277) == "92.8%"
    assert round_figure("partial.kept_psnr.ceiling", 20.52) == "20.5" and round_figure("miou", 0.28678) == "0.287"
    svg = curve_svg([10, 20, 30], [3.0, 2.0, 1.5], "x: training loss")
    assert svg.startswith("<svg") and svg.count(",") == 3 and "step 10" in svg


def test_the_report_has_a_curve_for_every_run_with_a_log(tmp_path):
    runs = tmp_path / "runs"
    for stage, n in (("segmenter", 6), ("vqgan", 9), ("transformer", 1), ("judge", 4)):
        (runs / stage).mkdir(parents=True)
        (runs / stage / "metrics.jsonl").write_text(
            "".join(json.dumps({"step": 10 * (i + 1), "loss": 2.0 / (i + 1)}) + "\n" for i in range(n)) + "not json\n")
    (runs / "maskclip").mkdir()  # no log: no curve
    summary = {"settings": {"n": 100, "size": 32, "seed": 0, "profile": "tiny"}, "stage_seconds": {"vqgan": 3.0},
               "total_seconds": 3.0, "dataset": {"samples": 100},
               "metrics": {"segmenter": {"steps": 60, "planned_steps": 60, "stopped_by": "max_steps",
                                         "train_seconds": 2.5, "mixed_precision": "auto", "miou": 0.2},
                           "maskclip": {"pointing_accuracy": 0.7, "pointing_chance": 0.2}}}
    page = quickstart_page(tmp_path, summary).read_text()
    assert page.count("<svg") == 3 and "stage 2 (Transformer): fewer than two logged losses" in page and "judge" in page
    assert page.index("<h2>Summary</h2>") < page.index("<h2>Training curves</h2>") < page.index("<details>")
    assert "1 of 2 headline figures are far from their reference" in page and "class=far" in page
    assert "60 of 60 planned steps, stopped by max steps, 2 s, precision auto" in page
    assert "<td>miou</td><td>0.200</td>" in page


def test_times_read_as_minutes():
    from armani.report.html import _minutes
    assert _minutes(719.68) == "720 s (12 min 00 s)" and _minutes(61.2) == "61 s (1 min 01 s)"
