#!/usr/bin/env bash
# Measures how many compose samples Capstan plans: runs `capstan plan --json` on every
# directory under DIR that holds a compose file (as in a checkout of docker/awesome-compose)
# and prints each refusal with its reason, then the count against the target.
# Usage: scripts/compose-coverage.sh DIR [CAPSTAN_BINARY]
set -euo pipefail
dir=${1:?usage: $0 DIR [CAPSTAN_BINARY]}
capstan=${2:-capstan}
target_percent=80 # 32 of docker/awesome-compose's 40 samples
planned=0
total=0
for sample in "$dir"/*/; do
    sample=${sample%/}
    found=
    for name in compose.yaml compose.yml docker-compose.yaml docker-compose.yml; do
        [[ -f $sample/$name ]] && found=$name && break
    done
    [[ -n $found ]] || continue
    total=$((total + 1))
    if error=$("$capstan" plan "$sample" --json 2>&1 >/dev/null); then
        planned=$((planned + 1))
    else
        printf 'refused %s: %s\n' "$(basename "$sample")" "$(tail -n 1 <<<"$error")"
    fi
done
[[ $total -gt 0 ]] || { echo "no compose samples under $dir" >&2; exit 1; }
echo "compose samples planned: $planned of $total (target: ${target_percent}%, $(( (total * target_percent + 99) / 100 )) of $total)"
