#!/usr/bin/env python3
"""Generate the long-tailed demo video dataset (no download).

Each class is a combination of what a cheap colour/motion descriptor can see once averaged
over time: the hue of a moving blob (8 neighbouring hues), its speed (slow / fast) and the
half of the frame it moves in (top / bottom): 32 classes. Nuisances keep it from being
trivial: hue, size, brightness and speed jitter, a random start and bouncing direction, a
distractor blob of a random colour (it looks like another class's object), a noisy background
whose brightness changes per clip. The few-shot classes' handful of clips cannot cover that
variation; the head classes' clips can, which is what LMR's reconstruction borrows.

Class sizes follow a steep power law (the largest class has --max-clips clips, the smallest
--min-clips). The class order is shuffled with the seed, so head and tail classes are not
neighbours in hue.

Written under --out:
  videos/P0x/P0x_yy.MP4          training clips, H.264, back to back inside long videos
  EPIC_100_train.csv             EPIC-KITCHENS-100 layout (verb_class = class)
  EPIC_100_verb_classes.csv      id,key,instances,category
  videos/<id>.webm               validation clips, VP9, one file per clip (SSv2 layout)
  something-something-v2-labels.json, something-something-v2-validation.json
  classes.csv                    index,name,train_clips (for people, not for lmr)

Frames are piped as raw RGB into the ffmpeg CLI. Needs numpy and ffmpeg (libx264, libvpx-vp9).
"""
import argparse
import colorsys
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

HUES = ["red", "orange", "yellow", "green", "teal", "blue", "purple", "pink"]
SPEEDS = ["slowly", "quickly"]
REGIONS = ["top", "bottom"]


def class_names():
    return [f"{h} {s} {r}" for h in HUES for s in SPEEDS for r in REGIONS]


def class_attrs(c):
    h, rest = divmod(c, len(SPEEDS) * len(REGIONS))
    s, r = divmod(rest, len(REGIONS))
    return h, s, r


def render_clip(rng, attr, n_frames, size, noise, hue_jitter=0.025, distractor_sat=0.0):
    """One clip of the class with attribute index attr: (n_frames, size, size, 3) uint8."""
    h, s, r = class_attrs(attr)
    hue = (h / len(HUES) + rng.normal(0, hue_jitter)) % 1.0
    sat = rng.uniform(0.55, 1.0)
    val = rng.uniform(0.6, 1.0)
    colour = np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255.0
    radius = rng.uniform(0.09, 0.16) * size
    speed = (rng.uniform(0.5, 1.3) if s == 0 else rng.uniform(2.0, 3.6)) * size / 64.0
    # The region is a band a little larger than half the frame: the halves overlap.
    band = (0.0, 0.6) if r == 0 else (0.4, 1.0)
    lo_y, hi_y = band[0] * size + radius, band[1] * size - radius
    lo_x, hi_x = radius, size - radius
    angle = rng.uniform(0, 2 * np.pi)
    pos = np.array([rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)])
    vel = speed * np.array([np.cos(angle), np.sin(angle)])
    centres = np.empty((n_frames, 2))
    for t in range(n_frames):  # bounce off the band's walls
        centres[t] = pos
        pos = pos + vel
        for k, (lo, hi) in enumerate(((lo_x, hi_x), (lo_y, hi_y))):
            if pos[k] < lo or pos[k] > hi:
                vel[k] = -vel[k]
                pos[k] = np.clip(pos[k], lo, hi)
    # Distractor: a blob drifting anywhere, grey or (distractor_sat > 0) of any hue, so that it
    # looks like some other class's object.
    d_pos = rng.uniform(0, size, 2)
    d_vel = rng.normal(0, 1.2, 2) * size / 64.0
    d_rad = rng.uniform(0.06, 0.12) * size
    d_colour = np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), distractor_sat, rng.uniform(0.35, 0.8))) * 255.0

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    bg = rng.uniform(20, 80)
    frames = np.empty((n_frames, size, size, 3), np.float32)
    frames[:] = bg
    for t in range(n_frames):
        d = d_pos + t * d_vel
        m = (xx - d[0]) ** 2 + (yy - d[1]) ** 2 <= d_rad ** 2
        frames[t][m] = d_colour
        cx, cy = centres[t]
        m = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2
        frames[t][m] = colour
    frames += noise * rng.standard_normal(frames.shape, dtype=np.float32)
    return np.clip(frames, 0, 255).astype(np.uint8)


def encode(frames_iter, path, size, fps, codec, muxer_args=()):
    """Pipe raw RGB frames into ffmpeg; codec is 'h264' or 'vp9'. With muxer_args (the segment
    muxer) path is a pattern and ffmpeg writes the files itself."""
    if codec == "h264":
        cargs = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-g", str(fps)]
    else:
        cargs = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "400k",
                 "-g", str(fps)]
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{size}x{size}", "-r", str(fps), "-i", "-", *cargs, "-pix_fmt", "yuv420p",
           "-threads", "1", *muxer_args]
    cmd.append(path if muxer_args else path + ".tmp" + os.path.splitext(path)[1])
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    try:
        for f in frames_iter:
            p.stdin.write(f.tobytes())
    finally:
        p.stdin.close()
    if p.wait() != 0:
        raise RuntimeError(f"ffmpeg failed for {path}")
    if not muxer_args:
        os.replace(cmd[-1], path)


def timestamp(t):
    hh, rem = divmod(t, 3600)
    mm, ss = divmod(rem, 60)
    return f"{int(hh):02d}:{int(mm):02d}:{ss:05.2f}"


def class_sizes(n_classes, max_clips, min_clips, rng):
    """Power law from max_clips down to min_clips, assigned to classes in a seeded order."""
    ranks = np.arange(n_classes) / max(n_classes - 1, 1)
    sizes = np.round(max_clips * (min_clips / max_clips) ** ranks).astype(int)
    order = rng.permutation(n_classes)
    out = np.empty(n_classes, int)
    out[order] = sizes
    return out


def write_train(args, rng, names, sizes):
    """Training clips back to back in long H.264 videos, with an EPIC_100_train.csv."""
    labels = np.repeat(np.arange(len(names)), sizes)
    rng.shuffle(labels)
    fps, clip_s, gap_s = args.fps, args.clip_seconds, 0.2
    n_frames = int(round(clip_s * fps))
    slot = int(round((clip_s + gap_s) * fps))
    per_video = args.clips_per_video
    videos = []
    for v, start in enumerate(range(0, len(labels), per_video)):
        part = 1 + v % args.participants
        num = 1 + v // args.participants
        if v == 1:
            num = 101  # one extension video (50 fps frame columns in EPIC)
        videos.append((f"P{part:02d}", f"P{part:02d}_{num:02d}" if num < 100 else f"P{part:02d}_{num}",
                       labels[start:start + per_video]))
    rows = []
    jobs = []
    for pid, vid, labs in videos:
        seeds = rng.integers(0, 2**63, len(labs))
        big_f = 50 if int(vid.split("_")[1]) >= 100 else 60
        for k, (c, sd) in enumerate(zip(labs, seeds)):
            t0 = k * slot / fps
            t1 = t0 + clip_s
            rows.append([f"{vid}_{k}", pid, vid, timestamp(t0), timestamp(t0), timestamp(t1),
                         max(1, int(t0 * big_f)), int(t1 * big_f), f"{names[c]} object", names[c],
                         int(c), "object", 0, "['object']", "[0]"])
        jobs.append((pid, vid, labs, seeds))

    def make_video(job):
        pid, vid, labs, seeds = job
        os.makedirs(os.path.join(args.out, "videos", pid), exist_ok=True)
        size = args.size
        gap = np.full((slot - n_frames, size, size, 3), 40, np.uint8)

        def frames():
            for c, sd in zip(labs, seeds):
                clip = render_clip(np.random.default_rng(sd), args.pick[c], n_frames, size, args.noise,
                                   args.hue_jitter, args.distractor_sat)
                yield from clip
                yield from gap
        encode(frames(), os.path.join(args.out, "videos", pid, vid + ".MP4"), size, fps, "h264")

    with ThreadPoolExecutor(args.jobs) as ex:
        list(ex.map(make_video, jobs))
    header = ["narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp",
              "stop_timestamp", "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun",
              "noun_class", "all_nouns", "all_noun_classes"]
    with open(os.path.join(args.out, "EPIC_100_train.csv"), "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(f'"{x}"' if isinstance(x, str) and ("," in x or "'" in x) else str(x)
                             for x in r) + "\n")
    with open(os.path.join(args.out, "EPIC_100_verb_classes.csv"), "w") as f:
        f.write("id,key,instances,category\n")
        for c, n in enumerate(names):
            f.write(f"{c},{n.replace(' ', '-')},\"['{n}']\",demo\n")
    return len(rows)


def write_val(args, rng, names):
    """Balanced validation clips, one VP9 WebM each, in the SSv2 json layout."""
    templates = [f"Moving [something] {n}" for n in names]
    entries, jobs = [], []
    vid = 100000
    for c in range(len(names)):
        for _ in range(args.val_per_class):
            vid += 1
            n_frames = int(round(rng.uniform(0.9, 1.1) * args.clip_seconds * args.fps))
            jobs.append((str(vid), c, n_frames, int(rng.integers(0, 2**63))))
            entries.append({"id": str(vid), "label": f"moving a ball {names[c]}",
                            "template": templates[c], "placeholders": ["a ball"]})
    order = rng.permutation(len(entries))
    entries = [entries[i] for i in order]

    def make_chunk(k):
        # One ffmpeg process per chunk, cutting one WebM per clip with the segment muxer
        # (a keyframe at every cut): far cheaper than a process per clip.
        chunk = jobs[k::args.jobs]
        tmp = os.path.join(args.out, "videos", f".val-{k}")
        os.makedirs(tmp, exist_ok=True)
        cuts = np.cumsum([n for _, _, n, _ in chunk])[:-1].tolist()
        keys = ",".join(f"{c / args.fps:.4f}" for c in [0] + cuts)

        def frames():
            for vid, c, n_frames, sd in chunk:
                yield from render_clip(np.random.default_rng(sd), args.pick[c], n_frames, args.size, args.noise,
                                      args.hue_jitter, args.distractor_sat)
        seg = ["-force_key_frames", keys, "-f", "segment", "-segment_format", "webm",
               "-reset_timestamps", "1"] + (["-segment_frames", ",".join(map(str, cuts))] if cuts else [])
        encode(frames(), os.path.join(tmp, "s%05d.webm"), args.size, args.fps, "vp9", seg)
        for i, (vid, _, _, _) in enumerate(chunk):
            os.replace(os.path.join(tmp, f"s{i:05d}.webm"), os.path.join(args.out, "videos", vid + ".webm"))
        os.rmdir(tmp)

    os.makedirs(os.path.join(args.out, "videos"), exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as ex:
        list(ex.map(make_chunk, range(min(args.jobs, len(jobs)))))
    labels = {t.replace("[", "").replace("]", ""): str(c) for c, t in enumerate(templates)}
    with open(os.path.join(args.out, "something-something-v2-labels.json"), "w") as f:
        json.dump(labels, f, indent=1)
    with open(os.path.join(args.out, "something-something-v2-validation.json"), "w") as f:
        json.dump(entries, f, indent=1)
    return len(entries)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--classes", type=int, default=32, help="at most 32")
    ap.add_argument("--max-clips", type=int, default=240, help="training clips of the largest class")
    ap.add_argument("--min-clips", type=int, default=4, help="training clips of the smallest class")
    ap.add_argument("--val-per-class", type=int, default=10)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--fps", type=int, default=20)
    ap.add_argument("--clip-seconds", type=float, default=1.2)
    ap.add_argument("--noise", type=float, default=12.0, help="pixel noise sigma")
    ap.add_argument("--hue-jitter", type=float, default=0.025, help="sigma of the object's hue (1 = full circle)")
    ap.add_argument("--distractor-sat", type=float, default=0.7, help="distractor saturation (0 = grey)")
    ap.add_argument("--clips-per-video", type=int, default=64)
    ap.add_argument("--participants", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2, help="ffmpeg processes at once")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    names = class_names()
    if not 2 <= args.classes <= len(names) or args.min_clips < 1 or args.max_clips < args.min_clips:
        ap.error("need 2..32 classes and 1 <= min-clips <= max-clips")
    rng = np.random.default_rng(args.seed)
    # Spread the chosen classes over all hues, speeds and regions.
    pick = np.sort(rng.permutation(len(names))[:args.classes]) if args.classes < len(names) else np.arange(len(names))
    names = [names[i] for i in pick]
    args.pick = [int(i) for i in pick]
    sizes = class_sizes(len(names), args.max_clips, args.min_clips, rng)
    os.makedirs(args.out, exist_ok=True)
    n_train = write_train(args, rng, names, sizes)
    n_val = write_val(args, rng, names)
    with open(os.path.join(args.out, "classes.csv"), "w") as f:
        f.write("index,name,train_clips\n")
        for c, (n, k) in enumerate(zip(names, sizes)):
            f.write(f"{c},{n},{k}\n")
    print(f"make_demo_data: {len(names)} classes, {n_train} training clips (largest class {sizes.max()}, "
          f"smallest {sizes.min()}, imbalance {sizes.max() / sizes.min():.0f}, "
          f"{int((sizes <= 20).sum())} classes with <= 20), {n_val} validation clips -> {args.out}")


if __name__ == "__main__":
    sys.exit(main())
