#!/usr/bin/env bash
# On the GPU machine (2 GPUs), from the repository root after scripts/build-static.sh filled .gpu/:
# `cohort train --deterministic` against the default, twice each, on 1 and 2 GPUs at batch 32:
# median device step and whether the logged losses of the two runs of each way are identical.
set -uo pipefail
cat .gpu/build-info.txt; nvidia-smi --query-gpu=index,name --format=csv,noheader
source scripts/gpu-common.sh; unpack_cohort >/dev/null || exit 1
common=(train --device cuda --precision bf16 --dataset synthetic --epochs 1 --eval-limit 1024 --no-progress --log-every 10 --batch-size 32 --steps-per-epoch 100)
for name in n1 d1 n2 d2; do
  flag=(); [[ $name == d* ]] && flag=(--deterministic)
  timeout 60 "$cohort" "${common[@]}" "${flag[@]}" --synthetic-images 3200 --run-dir /tmp/r/$name > /tmp/r-$name.txt 2>&1
  timeout 90 "$cohort" launch --nproc-per-node 2 -- "$cohort" "${common[@]}" "${flag[@]}" --synthetic-images 6400 --run-dir /tmp/r/$name-2gpu > /tmp/r-$name-2gpu.txt 2>&1
done
python3 - <<'PY'
import json, os, statistics
def recs(f):
    d="/tmp/r/"+f; n=[x for x in os.listdir(d) if x.startswith("metrics")]
    n="metrics-rank0.jsonl" if "metrics-rank0.jsonl" in n else n[0]
    return [json.loads(l) for l in open(os.path.join(d,n)) if l.strip()]
for f in ["n1","n2","d1","d2","n1-2gpu","n2-2gpu","d1-2gpu","d2-2gpu"]:
    r=recs(f); s=[x["device_step_seconds"] for x in r if x.get("event")=="step" and "device_step_seconds" in x][2:]
    print(f, "step %.3f ms"%(statistics.median(s)*1e3), "losses", [round(x["loss"],6) for x in r if x.get("event")=="step"][:4])
for a,b in [("n1","n2"),("d1","d2"),("n1-2gpu","n2-2gpu"),("d1-2gpu","d2-2gpu")]:
    la=[x.get("loss") for x in recs(a) if x.get("event")=="step"]; lb=[x.get("loss") for x in recs(b) if x.get("event")=="step"]
    print(a,b,"identical" if la==lb else "differ max %.2e"%max(abs(x-y) for x,y in zip(la,lb)))
PY
grep -a "deterministic\|no bf16\|widened" /tmp/r-d1.txt | head -5
