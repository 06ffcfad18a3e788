#!/usr/bin/env bash
# lmr-extract against what people use instead, on a generated corpus, same worker count:
#   - the ffmpeg CLI decoding every file to null (a full decode: the floor for "decode it all"),
#   - a PyAV + numpy pipeline doing the same sampling (open, seek, decode, scale, crop per clip).
# Corpus: short H.264 320x240 clips, VP9 427x240 clips (SSv2-like), 60 s 720p H.264 videos with
# 20 segments each (EPIC-like). 8 frames per clip at 224. Usage: bench/extract.sh BUILD/bin [workers]
set -euo pipefail
BIN=${1:?usage: bench/extract.sh BUILD/bin [workers]}
BIN=$(cd "$BIN" && pwd)
W=${2:-$(nproc)}
PY=${LMR_PYTHON:-/usr/bin/python3}
N_SHORT=${N_SHORT:-96}   # clips per short corpus
N_LONG=${N_LONG:-3}      # long videos
CORPUS=${LMR_BENCH_DIR:-${TMPDIR:-/tmp}/lmr-bench-extract}
mkdir -p "$CORPUS"/h264 "$CORPUS"/vp9 "$CORPUS"/long
cd "$CORPUS"

now() { date +%s.%N; }
rate() { awk -v n="$1" -v t="$2" 'BEGIN { printf "%.1f", n / t }'; }

# --- corpus (cached) --------------------------------------------------------------------------
if [ ! -f h264/.done ]; then
  echo "generating $N_SHORT H.264 320x240 clips of 4 s"
  ffmpeg -v error -y -f lavfi -i "testsrc2=s=320x240:r=30:d=$((N_SHORT * 4))" -c:v libx264 -preset veryfast \
    -g 60 -pix_fmt yuv420p -f segment -segment_time 4 -reset_timestamps 1 h264/c%04d.mp4
  touch h264/.done
fi
if [ ! -f vp9/.done ]; then
  echo "generating $N_SHORT VP9 427x240 clips of 4 s"
  ffmpeg -v error -y -f lavfi -i "testsrc2=s=426x240:r=30:d=$((N_SHORT * 4))" -vf scale=427:240 \
    -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 400k -g 60 -f segment -segment_time 4 \
    -reset_timestamps 1 vp9/c%04d.webm
  touch vp9/.done
fi
if [ ! -f long/.done ]; then
  echo "generating $N_LONG H.264 1280x720 videos of 60 s"
  for i in $(seq 1 "$N_LONG"); do
    ffmpeg -v error -y -f lavfi -i "testsrc2=s=1280x720:r=30:d=60" -c:v libx264 -preset veryfast \
      -pix_fmt yuv420p long/v$i.mp4   # x264's default GOP (up to 250 frames)
  done
  touch long/.done
fi

# Manifests: short clips whole; long videos: 20 segments of 2 s at seeded positions.
{ echo "clip_id,video,start_sec,stop_sec,labels"
  for f in h264/*.mp4; do echo "$(basename "$f" .mp4),$f,0,-1,0"; done; } > h264.csv
{ echo "clip_id,video,start_sec,stop_sec,labels"
  for f in vp9/*.webm; do echo "$(basename "$f" .webm),$f,0,-1,0"; done; } > vp9.csv
"$PY" - "$N_LONG" > long.csv <<'PYEOF'
import random, sys
random.seed(1)
print("clip_id,video,start_sec,stop_sec,labels")
for v in range(1, int(sys.argv[1]) + 1):
    for s in range(20):
        a = round(random.uniform(0, 57.5), 2)
        print(f"v{v}_{s:02d},long/v{v}.mp4,{a},{a + 2},0")
PYEOF

# --- PyAV + numpy: the same sampling, one clip at a time, W processes ---------------------------
cat > pyav_extract.py <<'PYEOF'
import sys, csv, math, time, multiprocessing as mp
import av, numpy as np

T, S = 8, 224

def clip(row):
    cid, video, a, b = row[0], row[1], float(row[2]), float(row[3])
    with av.open(video) as c:
        st = c.streams.video[0]
        st.thread_type = "AUTO"
        fps = float(st.average_rate)
        dur = float(st.duration * st.time_base) if st.duration else c.duration / 1e6
        n_total = st.frames or int(round(dur * fps))
        first = int(math.floor(a * fps + 1e-6))
        last = n_total - 1 if b < 0 else int(math.ceil(b * fps - 1e-6)) - 1
        n = last - first + 1
        want = [first + int(math.floor(n * (t + 0.5) / T)) for t in range(T)]
        times = [k / fps for k in want]
        c.seek(int(times[0] / st.time_base), stream=st, backward=True, any_frame=False)
        out, prev, i, nd = [], None, 0, 0
        for fr in c.decode(st):
            nd += 1
            t = float(fr.pts * st.time_base)
            while i < T and t > times[i] + 0.5 / fps and prev is not None:
                out.append(prev); i += 1
            if i >= T:
                break
            prev = fr
        while i < T:
            out.append(prev); i += 1
        imgs = []
        for fr in out:
            w, h = fr.width, fr.height
            ow, oh = (S, round(h * S / w)) if w <= h else (round(w * S / h), S)
            a_ = fr.to_ndarray(width=ow, height=oh, format="rgb24")
            y0, x0 = (oh - S) // 2, (ow - S) // 2
            imgs.append(a_[y0:y0 + S, x0:x0 + S])
        return cid, np.stack(imgs), nd

def main():
    rows = list(csv.reader(open(sys.argv[1])))[1:]
    with mp.Pool(int(sys.argv[2])) as p:
        res = list(p.imap(clip, rows, chunksize=1))
    print(sum(1 for cid, x, nd in res if x.shape == (T, S, S, 3)), sum(nd for cid, x, nd in res))

if __name__ == "__main__":
    main()
PYEOF

# --- runs ---------------------------------------------------------------------------------------
# Each tool under /usr/bin/time: wall seconds, and CPU seconds (user + sys, children included),
# since on a shared machine the CPU cost is the steadier figure.
timed() { local out=$1; shift; /usr/bin/time -o "$out" -f "%e %U %S" "$@"; }
wall() { awk '{print $1}' "$1"; }
cpu() { awk '{print $2 + $3}' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

printf "\nworkers=%s, T=8, size 224; clips/s by wall time [clips per CPU-second]\n" "$W"
printf "%-36s %6s %16s %16s %16s   %s\n" corpus clips lmr-extract "ffmpeg-cli" "pyav+numpy" "lmr/pyav lmr/cli (wall; cpu)"
decoded=""
for set in h264 vp9 long; do
  n=$(($(wc -l < $set.csv) - 1))
  case $set in long) files=$(ls long/*.mp4) ;; h264) files=$(ls h264/*.mp4) ;; vp9) files=$(ls vp9/*.webm) ;; esac
  rm -f $set.rec $set.rec.meta.json
  timed t_lmr "$BIN"/lmr-extract --dataset manifest --annotations $set.csv --videos . --frames 8 \
    --size 224 --threads "$W" --out $set.rec 2> lmr.err
  lmr_frames=$(grep -o '[0-9]* frames decoded' lmr.err | tail -1 | cut -d' ' -f1)
  echo "$files" | timed t_cli xargs -P "$W" -I{} ffmpeg -v error -nostdin -i {} -f null -
  timed t_py "$PY" pyav_extract.py $set.csv "$W" > py.out
  read -r got py_frames < py.out
  decoded="$decoded$(printf '%-36s lmr %6.1f  pyav %6.1f' "$set" "$(rate "$lmr_frames" "$n")" "$(rate "$py_frames" "$got")")
"
  case $set in h264) name="short H.264 320x240 (4 s clips)";; vp9) name="VP9 427x240 (4 s clips)";;
               long) name="720p H.264 60 s, 20 segments each";; esac
  printf "%-36s %6d %8s [%5s] %8s [%5s] %8s [%5s]   %5sx %5sx ; %5sx %5sx\n" "$name" "$n" \
    "$(rate $n $(wall t_lmr))" "$(rate $n $(cpu t_lmr))" "$(rate $n $(wall t_cli))" "$(rate $n $(cpu t_cli))" \
    "$(rate "$got" $(wall t_py))" "$(rate "$got" $(cpu t_py))" \
    "$(ratio $(wall t_py) $(wall t_lmr))" "$(ratio $(wall t_cli) $(wall t_lmr))" \
    "$(ratio $(cpu t_py) $(cpu t_lmr))" "$(ratio $(cpu t_cli) $(cpu t_lmr))"
done
echo "(ffmpeg-cli decodes every frame of the same files to null; pyav opens, seeks and decodes per clip)"

# A yardstick for exact frames on the long videos: the CLI decoding every reference frame once
# (-skip_frame noref, one thread per file) and nothing else. lmr-extract decodes less than that
# (the reference frames up to each GOP's last needed frame, and the other frames it shows), but
# scales and writes too. Decoding less again would mean leaving out reference B-frames.
echo "$(ls long/*.mp4)" | timed t_floor xargs -P "$W" -I{} ffmpeg -v error -nostdin -threads 1 \
  -skip_frame noref -i {} -f null -
# (t_lmr still holds the long set's run: it was the loop's last)
printf "\nEPIC-like: the CLI decoding every reference frame once takes %s CPU-s; lmr-extract's whole run,\nscaling and writing included, %s CPU-s (%sx)\n" \
  "$(cpu t_floor)" "$(cpu t_lmr)" "$(ratio $(cpu t_lmr) $(cpu t_floor))"
printf "\nframes decoded per clip (lmr serves a video's clips in time order from one decoder and drops\nnon-reference frames it does not need; each of pyav's clips decodes from its keyframe):\n%b" "$decoded"
