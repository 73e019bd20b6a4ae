#!/usr/bin/env bash
# Benchmark the pull-through cache (serve-models -upstream, issue 16) with
# the stock Ollama: the same `ollama pull` straight from a local registry
# and through the cache, cold and warm, at full speed and with the CDN
# capping each connection. See bench/README.md ("cache").
#
#   bash bench/cache.sh                   # REPS=3, a 1 GiB model
#   REPS=5 MODEL_MIB=2048 bash bench/cache.sh
#   OLLAMA_BIN=/usr/local/bin/ollama OMD_BIN=/tmp/omd bash bench/cache.sh
#
# Everything lives in bench/work/cache/ (model files, registry storage,
# nginx and registry configs, logs) and bench/results/cache*.
set -euo pipefail

REPS=${REPS:-3}
SCENARIOS=${SCENARIOS:-"full capped two"} # full: direct, cold, warm at full speed; capped: direct and cold with the CDN capped; two: two hosts pulling through a cold cache at once
MODEL_MIB=${MODEL_MIB:-1024} # the model layer; plus a template, params and the config
RATE=${RATE:-8m}             # nginx limit_rate per connection on the capped CDN
CDN_FAST=${CDN_FAST:-18491}
CDN_CAPPED=${CDN_CAPPED:-18492}
REG_FAST=${REG_FAST:-18493}
REG_CAPPED=${REG_CAPPED:-18494}
CACHE_PORT=${CACHE_PORT:-18495}
OLLAMA_PORT=${OLLAMA_PORT:-18496}
OLLAMA_PORT2=${OLLAMA_PORT2:-18497} # the second host of scenario two

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
WORK=$BENCH/work/cache
RESULTS=$BENCH/results
LOGS=$WORK/logs
STORAGE=$WORK/storage
RAW=$RESULTS/cache-raw.tsv
OMD=${OMD_BIN:-$WORK/omd}
PIDS=()
CDN_LOGS=() # the CDNs' access logs: $bytes_sent first (bench/nginx.conf.in)

say() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

find_ollama() {
	local p
	for p in "${OLLAMA_BIN:-}" "$ROOT/../shared/tools/ollama" "$ROOT/../../shared/tools/ollama" "$(command -v ollama || true)"; do
		[[ -n $p && -x $p ]] && { echo "$p"; return; }
	done
	die "no stock Ollama: set OLLAMA_BIN (https://ollama.com/download)"
}

need_tools() {
	local missing=() pair
	for pair in nginx:nginx docker-registry:docker-registry curl:curl sha256sum:coreutils; do
		command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
	done
	command -v go >/dev/null 2>&1 || die "go is not installed (https://go.dev/dl/)"
	((${#missing[@]} == 0)) && return
	[[ $(id -u) == 0 ]] || die "missing ${missing[*]}: run as root, or: sudo apt-get install -y ${missing[*]}"
	say "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# wait_http url: until it answers (20 s at most).
wait_http() {
	local i
	for ((i = 0; i < 200; i++)); do
		curl -s -o /dev/null "$1" && return
		sleep 0.1
	done
	die "$1 did not answer"
}

# start_nginx name port rate: the CDN, serving the registry's storage.
start_nginx() {
	local name=$1 port=$2 rate=$3 prefix=$WORK/nginx-$1
	mkdir -p "$prefix"
	sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$port|g" -e "s|@ROOT@|$STORAGE|g" -e "s|@RATE@|$rate|g" \
		"$BENCH/nginx.conf.in" >"$prefix/nginx.conf"
	nginx -e "$prefix/error.log" -c "$prefix/nginx.conf" -p "$prefix" &
	PIDS+=($!)
	CDN_LOGS+=("$prefix/access.log")
	wait_http "http://127.0.0.1:$port/"
}

# start_registry port cdnport: Docker Distribution whose blob GETs answer
# 307 to the CDN under another host name (localhost), as
# registry.ollama.ai sends them to its CDN; stock Ollama needs that.
start_registry() {
	local port=$1 cdn=$2 conf=$WORK/registry-$1.yml
	cat >"$conf" <<-EOF
		version: 0.1
		log:
		  level: warn
		  accesslog:
		    disabled: true
		storage:
		  filesystem:
		    rootdirectory: $STORAGE
		  maintenance:
		    uploadpurging:
		      enabled: false
		http:
		  addr: 127.0.0.1:$port
		middleware:
		  storage:
		    - name: redirect
		      options:
		        baseurl: http://localhost:$cdn
	EOF
	docker-registry serve "$conf" >"$LOGS/registry-$port.log" 2>&1 &
	PIDS+=($!)
	wait_http "http://127.0.0.1:$port/v2/"
}

# push_blob file: monolithic upload (POST, then PUT ?digest=).
push_blob() {
	local file=$1 digest loc
	digest=sha256:$(sha256sum "$file" | cut -d' ' -f1)
	if curl -sf -o /dev/null -I "http://127.0.0.1:$REG_FAST/v2/library/big/blobs/$digest"; then
		echo "$digest"
		return
	fi
	loc=$(curl -sf -D - -o /dev/null -X POST "http://127.0.0.1:$REG_FAST/v2/library/big/blobs/uploads/" |
		tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
	[[ $loc == http* ]] || loc=http://127.0.0.1:$REG_FAST$loc
	case $loc in *\?*) loc="$loc&digest=$digest" ;; *) loc="$loc?digest=$digest" ;; esac
	curl -sf -o /dev/null -H 'Content-Type: application/octet-stream' -T "$file" "$loc" ||
		die "pushing $file failed"
	echo "$digest"
}

publish_model() {
	local dir=$WORK/model layer cfg tpl par man
	mkdir -p "$dir"
	if [[ ! -f $dir/layer.bin || $(stat -c %s "$dir/layer.bin") != $((MODEL_MIB << 20)) ]]; then
		say "creating a $MODEL_MIB MiB model layer"
		head -c $((MODEL_MIB << 20)) /dev/urandom >"$dir/layer.tmp"
		mv "$dir/layer.tmp" "$dir/layer.bin"
	fi
	printf '{{ .Prompt }}' >"$dir/template"
	printf '{"temperature":0}' >"$dir/params"
	printf '{"model_format":"gguf","model_family":"bench","file_type":"Q4_0","architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$dir/config"
	say "pushing the model to the registry"
	layer=$(push_blob "$dir/layer.bin")
	tpl=$(push_blob "$dir/template")
	par=$(push_blob "$dir/params")
	cfg=$(push_blob "$dir/config")
	man='{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
	man+="\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"digest\":\"$cfg\",\"size\":$(stat -c %s "$dir/config")},"
	man+="\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.model\",\"digest\":\"$layer\",\"size\":$(stat -c %s "$dir/layer.bin")},"
	man+="{\"mediaType\":\"application/vnd.ollama.image.template\",\"digest\":\"$tpl\",\"size\":$(stat -c %s "$dir/template")},"
	man+="{\"mediaType\":\"application/vnd.ollama.image.params\",\"digest\":\"$par\",\"size\":$(stat -c %s "$dir/params")}]}"
	curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' \
		--data-binary "$man" "http://127.0.0.1:$REG_FAST/v2/library/big/manifests/latest" || die "pushing the manifest failed"
	LAYER_HEX=${layer#sha256:}
}

# start_cache upstream dir: serve-models -upstream on CACHE_PORT.
start_cache() {
	"$OMD" serve-models -listen "127.0.0.1:$CACHE_PORT" -upstream "$1" -output-dir "$2" >"$LOGS/cache.out" 2>>"$LOGS/cache.err" &
	CACHE_PID=$!
	wait_http "http://127.0.0.1:$CACHE_PORT/v2/"
}

stop_pid() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# ollama_up home models port: a fresh Ollama (own HOME and models folder)
# on port; its pid in OLLAMA_UP_PID.
ollama_up() {
	local home=$1 models=$2 port=$3
	rm -rf "$home" "$models"
	mkdir -p "$home" "$models"
	HOME=$home OLLAMA_MODELS=$models OLLAMA_HOST=127.0.0.1:$port OLLAMA_NO_CLOUD=1 OLLAMA_NOPRUNE=1 NO_PROXY='*' \
		"$OLLAMA" serve >"$LOGS/ollama-$port.log" 2>&1 &
	OLLAMA_UP_PID=$!
	wait_http "http://127.0.0.1:$port/api/version"
}

# check_layer models scen rep: the model layer is there, whole.
check_layer() {
	local blob=$1/blobs/sha256-$LAYER_HEX
	[[ -f $blob && $(stat -c %s "$blob") == $((MODEL_MIB << 20)) ]] || die "$2 rep $3: the model layer is missing"
	if (($3 == 1)); then
		cmp -s "$blob" "$WORK/model/layer.bin" || die "$2: the layer differs"
	fi
}

# cdn_reset and cdn_sent: the bytes the CDNs sent between the two (nginx
# logs a request when it ends: a cut one a moment after the client let go).
cdn_reset() { local f; for f in "${CDN_LOGS[@]}"; do : >"$f"; done; }
cdn_sent() {
	sleep 0.3
	cat "${CDN_LOGS[@]}" | awk '{s += $1} END {printf "%d", s}'
}

# pull scenario rep ref: a fresh Ollama (own HOME and models folder) pulls
# ref; the wall time of `ollama pull` and the bytes the CDN sent go into
# raw.tsv.
pull() {
	local scen=$1 rep=$2 ref=$3 home=$WORK/ollama-home models=$WORK/ollama-models pid t0 t1 sent
	ollama_up "$home" "$models" "$OLLAMA_PORT"
	pid=$OLLAMA_UP_PID
	sync
	cdn_reset
	t0=$(date +%s%N)
	HOME=$home OLLAMA_HOST=127.0.0.1:$OLLAMA_PORT "$OLLAMA" pull --insecure "$ref" >"$LOGS/pull-$scen-$rep.out" 2>&1 ||
		die "$scen rep $rep: ollama pull $ref failed: $(tail -c 300 "$LOGS/pull-$scen-$rep.out")"
	t1=$(date +%s%N)
	sent=$(cdn_sent)
	stop_pid "$pid"
	check_layer "$models" "$scen" "$rep"
	printf '%s\t%s\t%s\t%s\t%s\n' "$scen" "$rep" $(((t1 - t0) / 1000)) "$sent" "$MODEL_BYTES" >>"$RAW"
	say "$scen rep $rep: $(((t1 - t0) / 1000000)) ms, the CDN sent $sent bytes for $MODEL_BYTES"
}

# pull_two scenario rep ref: two fresh Ollama hosts pull ref at once (the
# cache fetches each blob once for both); the wall time is the later one's.
pull_two() {
	local scen=$1 rep=$2 ref=$3 pids=() t0 t1 sent i port
	for i in 1 2; do
		port=$OLLAMA_PORT
		((i == 2)) && port=$OLLAMA_PORT2
		ollama_up "$WORK/ollama-home$i" "$WORK/ollama-models$i" "$port"
		pids+=("$OLLAMA_UP_PID")
	done
	sync
	cdn_reset
	t0=$(date +%s%N)
	HOME=$WORK/ollama-home1 OLLAMA_HOST=127.0.0.1:$OLLAMA_PORT "$OLLAMA" pull --insecure "$ref" >"$LOGS/pull-$scen-$rep-1.out" 2>&1 &
	local a=$!
	HOME=$WORK/ollama-home2 OLLAMA_HOST=127.0.0.1:$OLLAMA_PORT2 "$OLLAMA" pull --insecure "$ref" >"$LOGS/pull-$scen-$rep-2.out" 2>&1 &
	local b=$!
	wait "$a" || die "$scen rep $rep: the first host's pull failed: $(tail -c 300 "$LOGS/pull-$scen-$rep-1.out")"
	wait "$b" || die "$scen rep $rep: the second host's pull failed: $(tail -c 300 "$LOGS/pull-$scen-$rep-2.out")"
	t1=$(date +%s%N)
	sent=$(cdn_sent)
	for i in "${pids[@]}"; do stop_pid "$i"; done
	check_layer "$WORK/ollama-models1" "$scen" "$rep"
	check_layer "$WORK/ollama-models2" "$scen" "$rep"
	printf '%s\t%s\t%s\t%s\t%s\n' "$scen" "$rep" $(((t1 - t0) / 1000)) "$sent" "$MODEL_BYTES" >>"$RAW"
	say "$scen rep $rep: $(((t1 - t0) / 1000000)) ms, the CDN sent $sent bytes for $MODEL_BYTES"
}

summarize() {
	awk -F'\t' -v mib="$MODEL_MIB" -v reps="$REPS" -v rate="$RATE" '
	function median(key,   n, i, j, t, v) {
		n = split(walls[key], v, " ")
		for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
		return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
	}
	{
		if (!($1 in walls)) order[++count] = $1
		walls[$1] = walls[$1] " " $3
		if ($5 + 0 > 0 && $4 / $5 > sent[$1]) sent[$1] = $4 / $5
	}
	END {
		print "# Pull-through cache with the stock Ollama: medians of " reps " repetitions"
		print ""
		print "A model of " mib " MiB (plus template, params, config) in Docker Distribution on 127.0.0.1, blobs"
		print "redirected to nginx (capped: limit_rate " rate " per connection). Each pull is a fresh `ollama serve`"
		print "with an empty models folder; the wall time is that of `ollama pull --insecure`."
		print ""
		print "The CDN sent ÷ the model = the bytes the CDN nginx sent ($bytes_sent) over the blobs of the model, the largest"
		print "of the runs (a warm pull sends nothing; two hosts at once should cost one model, issue 22)."
		print ""
		print "| scenario | runs | median wall (s) | MB/s | CDN sent ÷ model (max) |"
		print "|---|---|---|---|---|"
		for (c = 1; c <= count; c++) {
			k = order[c]; m[k] = median(k) / 1e6
			printf "| %s | %d | %.3f | %.0f | %.4f |\n", k, split(walls[k], x, " "), m[k], mib * 1048576 / 1e6 / m[k], sent[k]
		}
		print ""
		print "## Targets (issues 16 and 22)"
		print ""
		print "| target | measured | met |"
		print "|---|---|---|"
		target("warm", "direct", 1.0, "warm cache ≤ 1.0× the same pull straight from the registry")
		target("cold", "direct", 1.2, "cold cache ≤ 1.2× a direct pull, full speed")
		target("capped-cold", "capped-direct", 0.9999, "cold cache faster than a direct pull, CDN capped per connection")
		bytes("cold", 1.02, "cold cache, full speed")
		bytes("capped-cold", 1.02, "cold cache, CDN capped per connection")
		bytes("two", 1.02, "two hosts at once through a cold cache")
	}
	function bytes(k, limit, text) {
		if (!(k in sent)) return
		printf "| the CDN sends ≤ %.2f× the model: %s | %.4f× | %s |\n", limit, text, sent[k], (sent[k] <= limit ? "yes" : "**no**")
	}
	function target(a, b, limit, text,   r) {
		if (!(a in m) || !(b in m)) return
		r = m[a] / m[b]
		printf "| %s | %.2f× | %s |\n", text, r, (r <= limit ? "yes" : "**no**")
	}' "$RAW"
}

main() {
	need_tools
	OLLAMA=$(find_ollama)
	mkdir -p "$WORK" "$LOGS" "$RESULTS" "$STORAGE"
	if [[ -z ${OMD_BIN:-} ]]; then
		say "building omd"
		(cd "$ROOT" && go build -o "$OMD" .)
	fi
	start_nginx fast "$CDN_FAST" 0
	start_nginx capped "$CDN_CAPPED" "$RATE"
	start_registry "$REG_FAST" "$CDN_FAST"
	start_registry "$REG_CAPPED" "$CDN_CAPPED" # the same storage, the capped CDN
	publish_model
	MODEL_BYTES=$(find "$WORK/model" -type f -printf '%s\n' | awk '{s += $1} END {printf "%d", s}')
	: >"$RAW"
	local rep cachedir=$WORK/cache-out
	for ((rep = 1; rep <= REPS; rep++)); do
		if [[ " $SCENARIOS " == *" full "* ]]; then
			# direct, then cold (an empty cache) and warm (the cache just
			# filled); the direct pull alternates between first and last.
			if ((rep % 2)); then pull direct "$rep" "127.0.0.1:$REG_FAST/library/big:latest"; fi
			rm -rf "$cachedir"
			start_cache "http://127.0.0.1:$REG_FAST" "$cachedir"
			pull cold "$rep" "127.0.0.1:$CACHE_PORT/library/big:latest"
			pull warm "$rep" "127.0.0.1:$CACHE_PORT/library/big:latest"
			stop_pid "$CACHE_PID"
			if ((rep % 2 == 0)); then pull direct "$rep" "127.0.0.1:$REG_FAST/library/big:latest"; fi
		fi
		if [[ " $SCENARIOS " == *" two "* ]]; then
			rm -rf "$cachedir"
			start_cache "http://127.0.0.1:$REG_FAST" "$cachedir"
			pull_two two "$rep" "127.0.0.1:$CACHE_PORT/library/big:latest"
			stop_pid "$CACHE_PID"
		fi
		if [[ " $SCENARIOS " == *" capped "* ]]; then
			pull capped-direct "$rep" "127.0.0.1:$REG_CAPPED/library/big:latest"
			rm -rf "$cachedir"
			start_cache "http://127.0.0.1:$REG_CAPPED" "$cachedir"
			pull capped-cold "$rep" "127.0.0.1:$CACHE_PORT/library/big:latest"
			stop_pid "$CACHE_PID"
		fi
	done
	rm -rf "$cachedir" "$WORK"/ollama-models*
	summarize | tee "$RESULTS/cache.md"
	say "written: $RESULTS/cache.md (raw runs: $RAW)"
}

main "$@"
