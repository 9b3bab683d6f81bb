#!/usr/bin/env bash
# The end-to-end demo: synthetic videos -> frames -> annotation JSON -> train -> evaluate -> convert.
#
#     bash demo.sh [BACKEND]      (torch, paddle or mindspore: backends.BACKENDS; default: torch)
#
# Everything goes under ./demo/ (or $DEMO_DIR). A rerun reuses the videos and frames (extraction is
# resumable) while core/synthetic.py and $DEMO_SYNTHETIC are unchanged, but trains from scratch.
# $DEMO_SYNTHETIC adds options to `python -m core.synthetic`; arguments after the backend are passed
# to train and evaluate, e.g.
# `DEMO_DIR=/tmp/small DEMO_SYNTHETIC="--videos-per-class 20" bash demo.sh torch --set n_epochs=4`.
set -euo pipefail
cd "$(dirname "$0")"

backend=${1:-torch}
shift || true
python=${PYTHON:-python}
# The backend registry (backends/__init__.py) is the one list of backends and of their checkpoint formats.
formats=$("$python" -c 'from backends import BACKENDS, native_format
print(" ".join(f"{name}={native_format(name)}" for name in BACKENDS))')
suffix=""
for entry in $formats; do [ "${entry%%=*}" = "$backend" ] && suffix=${entry#*=}; done
if [ -z "$suffix" ]; then
    echo "demo.sh: unknown backend '$backend' (use one of: $(echo "$formats" | sed 's/=[a-z]*//g'))" >&2; exit 2
fi
demo=${DEMO_DIR:-demo}
config=configs/synthetic.yaml
results=$demo/results/$backend
data=(--set "video_path=$demo/frames" --set "annotation_path=$demo/annotations/ucf101_01.json"
      --set "result_path=$results")
started=$SECONDS

echo "== 1/5 synthetic videos -> $demo/synthetic"
# The data is reused only if the same generator made it with the same options: another version of
# core/synthetic.py (other classes or sizes) must not leave stale videos, frames and annotations.
stamp="$(sha1sum core/synthetic.py | cut -d' ' -f1) ${DEMO_SYNTHETIC:-}"
if [ "$(cat "$demo/synthetic/made_by" 2>/dev/null)" != "$stamp" ]; then
    # Written aside and renamed: an interrupted run never leaves a partial dataset that looks finished.
    rm -rf "$demo/synthetic" "$demo/synthetic.tmp" "$demo/frames" "$demo/annotations"
    "$python" -m core.synthetic "$demo/synthetic.tmp" ${DEMO_SYNTHETIC:-}
    echo "$stamp" > "$demo/synthetic.tmp/made_by"
    mv "$demo/synthetic.tmp" "$demo/synthetic"
fi
echo "== 2/5 frames -> $demo/frames"
"$python" -m core.extract_frames "$demo/synthetic/videos" "$demo/frames" --size 0
echo "== 3/5 annotations -> $demo/annotations/ucf101_01.json"
"$python" -m core.annotations ucf101 "$demo/synthetic/splits" "$demo/frames" "$demo/annotations"

echo "== 4/5 train and evaluate with $backend -> $results"
rm -rf "$results"
"$python" -m "backends.$backend.train" --config "$config" "${data[@]}" "$@"
checkpoint=$(ls -v "$results"/save_[0-9]*."$suffix" | tail -n 1)  # -v: save_16 after save_8; not save_best
"$python" -m "backends.$backend.evaluate" --config "$config" "${data[@]}" "$@" \
    --resume_path "$checkpoint" | tee "$results/evaluate.txt"

echo "== 5/5 convert $checkpoint to the other formats"
for other in $(echo "$formats" | sed 's/[a-z]*=//g'); do
    [ "$other" = "$suffix" ] && continue
    "$python" -m convert "$checkpoint" "${checkpoint%.*}.$other" --verify
done

echo
echo "demo ($backend) finished in $((SECONDS - started))s"
grep "video top-1" "$results/evaluate.txt"
echo "results: $results (val.json, scores_rgb.npz, confusion_rgb.png, curves.png, train.log, val.log)"
