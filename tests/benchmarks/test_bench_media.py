"""bench_media --smoke end to end (tiny H.264 and VP9 clips, the JPEG, one round, the 1/2-worker pool): the JSON
carries its provenance and every configuration's numbers, and every path hands over the same pixels."""

from __future__ import annotations

import json

from benchmarks import bench_media
from benchmarks.media_paths import CONFIGS

CROPS_BYTES = 8 * 378 * 378 * 3


def test_smoke_report(tmp_path):
    out = tmp_path / "media.json"
    bench_media.main(["--smoke", "--cache-dir", str(tmp_path / "clips"), "--out", str(out)])
    report = json.loads(out.read_text())

    assert report["command"].endswith("--out " + str(out)) and "--smoke" in report["command"]
    assert len(report["git_commit"]) == 40 and report["machine"]["cpu_count"] >= 1
    assert all(len(load) == 3 for load in report["load_average_before_after"])
    assert [r["clip"]["name"] for r in report["results"]] == ["h264-tiny-2s", "vp9-tiny-2s", "jpeg-1000x667"]
    for clip in report["results"]:
        rows = {r["config"]: r for r in clip["rows"]}
        video = clip["clip"]["codec"] != "jpeg"
        assert set(rows) == {n for n in CONFIGS if video or not n.startswith(("a:", "b:"))}
        for row in rows.values():
            assert row["cpu_s"] > 0 and row["wall_s"] > 0 and set(row["stage_cpu_s"]) == set(bench_media.STAGES)
            assert row["pickle_bytes"] >= row["handoff_bytes"]
        frames = 8 if video else 1
        assert rows["production"]["handoff_bytes"] == frames * CROPS_BYTES // 8
        assert rows["yesterday"]["handoff_bytes"] == rows["upstream"]["handoff_bytes"] == 4 * frames * CROPS_BYTES // 8
        assert rows["production"]["cpu_ratio_vs_production"] == 1.0
        if video:  # skipping non-reference frames decodes fewer (H.264 has B-frames) or as many (VP9 realtime)
            assert rows["a:skip-off"]["frames_decoded"] >= rows["production"]["frames_decoded"]
            assert rows["upstream"]["frames_decoded"] == clip["clip"]["fps"] * 2  # sequential: every frame
        # Same pixels on every path: crops exactly, float32 bit for bit (upstream's transformers processor too).
        checks = clip["checks"]
        assert checks["production_crops_equal_clip_crop_of_yesterday_frames"] is True
        assert checks["scheduler_normalise_equals_yesterday"] is True
        assert checks["production_key_equals_yesterday_key"] is True
        for name in rows:
            assert checks[f"{name}_equal"] is True and checks[f"{name}_max_abs_diff"] == 0.0

    workers = report["workers"]
    assert [p["workers"] for p in workers["per_pool"]] == [1, 2] and workers["speedup_2_vs_1"] > 0
    assert all(p["cpu_per_item_s"] > 0 for p in workers["per_pool"])
    assert report["targets"]["workers_clip"].startswith("h264-tiny-2s")
