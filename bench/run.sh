#!/usr/bin/env bash
# Benchmark ollama-model-downloader (omd) against curl, aria2c and axel on
# 127.0.0.1, in one run, on the same machine: see bench/README.md.
#
#   bash bench/run.sh                 # as root on a clean clone (installs tools)
#   REPS=3 bash bench/run.sh          # fewer repetitions
#   SCENARIOS="big sha" bash bench/run.sh
#   SCENARIOS="ollama ollama_capped" bash bench/run.sh   # models vs a stock ollama pull
#   OMD_BIN=/tmp/omd-experiment bash bench/run.sh   # A/B another build
#
# Everything it creates lives in bench/work/ (files, nginx configs, logs) and
# bench/results/ (raw.tsv, latest.md); both are git-ignored.
set -euo pipefail

REPS=${REPS:-5}
SCENARIOS=${SCENARIOS:-"big throttled cut small many history sha state rss16 gobench"}
BIG_MIB=${BIG_MIB:-1024}           # scenario big and sha
THROTTLED_MIB=${THROTTLED_MIB:-256} # scenario throttled
SMALL_COUNT=${SMALL_COUNT:-200}     # scenario small: files of 1 MiB
MANY_COUNT=${MANY_COUNT:-2000}      # scenario many: files of 64 KiB
RATE=${RATE:-4m}                    # nginx limit_rate per connection on the throttled server
FAST_PORT=${FAST_PORT:-18481}
SLOW_PORT=${SLOW_PORT:-18482}
CUT_PORT=${CUT_PORT:-18488}         # scenario cut: a proxy to the fast server that cuts every CUT_BYTES
CUT_BYTES=${CUT_BYTES:-2097152}
CURL_THROTTLED_REPS=${CURL_THROTTLED_REPS:-1} # one connection at $RATE: 64 s per run for 256 MiB
PARALLEL=${PARALLEL:-16}
# Scenarios ollama / ollama_capped: a generated GGUF made into a model by the
# stock Ollama, pushed to Debian's docker-registry whose blobs redirect to a
# local nginx "CDN" (capped: limit_rate per connection), then pulled side by
# side by a stock `ollama pull`, `omd install NAME` and the omd zip.
OLLAMA_MIB=${OLLAMA_MIB:-200}
OLLAMA_REPS=${OLLAMA_REPS:-3}
OLLAMA_RATE=${OLLAMA_RATE:-8m}
REG_PORT=${REG_PORT:-18483}
REG_CAPPED_PORT=${REG_CAPPED_PORT:-18484}
CDN_PORT=${CDN_PORT:-18485}
CDN_CAPPED_PORT=${CDN_CAPPED_PORT:-18486}
OLLAMA_PORT=${OLLAMA_PORT:-18487}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
WORK=$BENCH/work
RESULTS=$BENCH/results
WWW=$WORK/www
LOGS=$WORK/logs
OMD=${OMD_BIN:-$WORK/omd}
RAW=$RESULTS/raw.tsv
STATE=$RESULTS/state.tsv
FAILURES=$RESULTS/failures.txt
NGINX_PIDS=()
OTHER_PIDS=() # docker-registry, ollama serve, cutproxy
SENT_LOGS=()  # logs whose first field is bytes sent to a client: every nginx's, the cut proxy's

say() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

cleanup() {
	local pid
	for pid in "${NGINX_PIDS[@]}" "${OTHER_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# install_tools installs the Debian packages of whatever is missing.
install_tools() {
	local missing=() pair
	for pair in nginx:nginx curl:curl aria2c:aria2 axel:axel openssl:openssl sha256sum:coreutils /usr/bin/time:time; do
		command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
	done
	command -v go >/dev/null 2>&1 || die "go is not installed (https://go.dev/dl/)"
	((${#missing[@]} == 0)) && return
	[[ $(id -u) == 0 ]] || die "missing ${missing[*]}: run as root, or: sudo apt-get install -y ${missing[*]}"
	say "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# make_file writes size MiB of random bytes once; reruns reuse it.
make_file() {
	local path=$1 mib=$2
	if [[ -f $path && $(stat -c %s "$path") == $((mib << 20)) ]]; then
		return
	fi
	say "creating $path ($mib MiB)"
	head -c $((mib << 20)) /dev/urandom >"$path.tmp"
	mv "$path.tmp" "$path"
}

# start_nginx name port rate [root]: one nginx in the foreground of a
# background job, with its config, pid, logs and temp folders under
# bench/work/, serving root (default bench/work/www).
start_nginx() {
	local name=$1 port=$2 rate=$3 root=${4:-$WWW} prefix=$WORK/nginx-$1 i
	if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
		die "port $port is already in use: set FAST_PORT / SLOW_PORT"
	fi
	mkdir -p "$prefix"
	sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$port|g" -e "s|@ROOT@|$root|g" -e "s|@RATE@|$rate|g" \
		"$BENCH/nginx.conf.in" >"$prefix/nginx.conf"
	nginx -e "$prefix/error.log" -c "$prefix/nginx.conf" -p "$prefix" &
	NGINX_PIDS+=($!)
	SENT_LOGS+=("$prefix/access.log")
	for ((i = 0; i < 100; i++)); do
		curl -s -o /dev/null "http://127.0.0.1:$port/" && return
		sleep 0.1
	done
	die "nginx $name did not start on port $port: $(cat "$prefix/error.log")"
}

# run_one scenario tool rep outdir command...: times one command (wall
# clock, and peak RSS from GNU time) into raw.tsv. The output folder is
# emptied and dirty pages flushed first, so no run pays for another's
# writeback; nothing is dropped from the page cache.
run_one() {
	local scen=$1 tool=$2 rep=$3 out=$4 t0 t1 rc=0 log f sent kept
	shift 4
	rm -rf "$out"
	mkdir -p "$out"
	sync
	for f in "${SENT_LOGS[@]}"; do : >"$f"; done
	log=$LOGS/$scen-$tool-$rep
	t0=$(date +%s%N)
	/usr/bin/time -f %M -o "$log.rss" "$@" >"$log.out" 2>"$log.err" || rc=$?
	t1=$(date +%s%N)
	if ((rc != 0)); then
		# A crash of a peer (axel 2.17 segfaults now and then) must not
		# lose the whole run: the run is left out of the medians and listed.
		say "FAILED ($rc): $scen $tool rep $rep: $*"
		tail -n 5 "$log.err" >&2
		printf '%s %s rep %s: exit status %s (%s.err)\n' "$scen" "$tool" "$rep" "$rc" "$log" >>"$FAILURES"
		return 1
	fi
	local gets=-
	if [[ $tool == omd ]] && grep -q 'msg=request' "$log.err"; then
		gets=$(grep -c 'msg=request method=GET' "$log.err" || true)
	fi
	# Bytes the servers sent (nginx logs a request when it ends: a cut
	# connection a moment after the client let go) against the bytes the
	# download kept (its files; a stock Ollama's models folder).
	sleep 0.3
	sent=$(cat "${SENT_LOGS[@]}" 2>/dev/null | awk '{s += $1} END {printf "%d", s}')
	kept=$(find "$out" "$WORK/ollama-models" -type f -not -path '*/.*' -printf '%s\n' 2>/dev/null | awk '{s += $1} END {printf "%d", s}')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$tool" "$rep" $(((t1 - t0) / 1000)) "$(tail -n 1 "$log.rss")" "$gets" "$sent" "$kept" >>"$RAW"
	say "$scen $tool rep $rep: $(((t1 - t0) / 1000000)) ms, $(tail -n 1 "$log.rss") KiB, GET requests: $gets, sent $sent for $kept kept"
}

# check_same a b: the download must be byte-identical (full compare on the
# first repetition, size on the others, to keep the page cache for the runs).
check_same() {
	local got=$1 want=$2 rep=$3
	[[ -f $got ]] || die "$got is missing"
	[[ $(stat -c %s "$got") == $(stat -c %s "$want") ]] || die "$got has the wrong size"
	if ((rep == 1)); then
		cmp -s "$got" "$want" || die "$got differs from $want"
	fi
}

# rotate n rep: the tools' order for this repetition, so that no tool is
# always first (cold) or last.
rotate() {
	local n=$1 rep=$2 i
	for ((i = 0; i < n; i++)); do echo $(((i + rep) % n)); done
}

scenario_big() {
	local url=http://127.0.0.1:$FAST_PORT/big.bin out=$WORK/out rep i cmd tools=(omd curl curl+sync aria2c axel)
	for ((rep = 1; rep <= REPS; rep++)); do
		for i in $(rotate ${#tools[@]} "$rep"); do
			case ${tools[i]} in
			omd) cmd=("$OMD" -v -output-dir "$out" "$url") ;;
			curl) cmd=(curl -sS -f -o "$out/big.bin" "$url") ;;
			# curl, then the file made durable as omd makes every file
			# before publishing it: what durability costs on this disk.
			curl+sync) cmd=(sh -c 'curl -sS -f -o "$1" "$2" && sync "$1"' curl+sync "$out/big.bin" "$url") ;;
			aria2c) cmd=(aria2c -x16 -s16 -k1M -q -d "$out" -o big.bin "$url") ;;
			axel) cmd=(axel -n16 -q -o "$out/big.bin" "$url") ;;
			esac
			if run_one big "${tools[i]}" "$rep" "$out" "${cmd[@]}"; then
				check_same "$out/big.bin" "$WWW/big.bin" "$rep"
			fi
			rm -rf "$out"
		done
	done
}

scenario_throttled() {
	local url=http://127.0.0.1:$SLOW_PORT/mid.bin out=$WORK/out rep i cmd tools=(omd axel axel+sync aria2c curl)
	for ((rep = 1; rep <= REPS; rep++)); do
		for i in $(rotate ${#tools[@]} "$rep"); do
			case ${tools[i]} in
			omd) cmd=("$OMD" -v -output-dir "$out" "$url") ;;
			axel) cmd=(axel -n16 -q -o "$out/mid.bin" "$url") ;;
			axel+sync) cmd=(sh -c 'axel -n16 -q -o "$1" "$2" && sync "$1"' axel+sync "$out/mid.bin" "$url") ;;
			aria2c) cmd=(aria2c -x16 -s16 -k1M -q -d "$out" -o mid.bin "$url") ;;
			curl)
				((rep <= CURL_THROTTLED_REPS)) || continue
				cmd=(curl -sS -f -o "$out/mid.bin" "$url")
				;;
			esac
			if run_one throttled "${tools[i]}" "$rep" "$out" "${cmd[@]}"; then
				check_same "$out/mid.bin" "$WWW/mid.bin" "$rep"
			fi
			rm -rf "$out"
		done
	done
}

# scenario_cut: the 256 MiB file through a proxy that cuts every connection
# after CUT_BYTES (2 MiB), as a flaky link or a proxy that drops long
# transfers: omd must resume each cut at once and keep the bytes sent
# within 1.03× the file (issue 22). The proxy counts what it sent.
scenario_cut() {
	local url=http://127.0.0.1:$CUT_PORT/mid.bin out=$WORK/out rep i cmd tools=(omd aria2c) proxylog=$WORK/cutproxy.log saved
	(cd "$ROOT" && go build -o "$WORK/cutproxy" ./bench/cutproxy) || die "building bench/cutproxy failed"
	"$WORK/cutproxy" -listen "127.0.0.1:$CUT_PORT" -upstream "127.0.0.1:$FAST_PORT" -cut "$CUT_BYTES" -log "$proxylog" 2>>"$LOGS/cutproxy.err" &
	OTHER_PIDS+=($!)
	for ((i = 0; i < 100; i++)); do
		curl -s -o /dev/null "http://127.0.0.1:$CUT_PORT/tiny.bin" && break
		sleep 0.1
	done
	saved=("${SENT_LOGS[@]}")
	SENT_LOGS=("$proxylog") # what the client saw sent is what crossed the proxy
	for ((rep = 1; rep <= REPS; rep++)); do
		for i in $(rotate ${#tools[@]} "$rep"); do
			case ${tools[i]} in
			omd) cmd=("$OMD" -v -output-dir "$out" "$url") ;;
			# aria2c resumes a cut connection too, when told to try for ever at once
			aria2c) cmd=(aria2c -x16 -s16 -k1M --max-tries=0 --retry-wait=0 -q -d "$out" -o mid.bin "$url") ;;
			esac
			if run_one cut "${tools[i]}" "$rep" "$out" "${cmd[@]}"; then
				check_same "$out/mid.bin" "$WWW/mid.bin" "$rep"
			fi
			rm -rf "$out"
		done
	done
	SENT_LOGS=("${saved[@]}")
}

scenario_small() {
	local out=$WORK/out list=$WORK/small.list rep i f n cmd tools=(omd curl aria2c) urls=()
	for ((n = 1; n <= SMALL_COUNT; n++)); do
		urls+=("http://127.0.0.1:$FAST_PORT/small/$(printf 'f%03d.bin' "$n")")
	done
	printf '%s\n' "${urls[@]}" >"$list"
	for ((rep = 1; rep <= REPS; rep++)); do
		for i in $(rotate ${#tools[@]} "$rep"); do
			case ${tools[i]} in
			omd) cmd=("$OMD" -concurrency "$PARALLEL" -output-dir "$out" "${urls[@]}") ;;
			curl) cmd=(curl -sS -f -Z --parallel-max "$PARALLEL" --output-dir "$out" --remote-name-all "${urls[@]}") ;;
			aria2c) cmd=(aria2c -j"$PARALLEL" -q -d "$out" -i "$list") ;;
			esac
			if run_one small "${tools[i]}" "$rep" "$out" "${cmd[@]}"; then
				for ((n = 1; n <= SMALL_COUNT; n++)); do
					f=$(printf 'f%03d.bin' "$n")
					check_same "$out/$f" "$WWW/small/$f" "$rep"
				done
			fi
			rm -rf "$out"
		done
	done
}

# scenario_sha: omd's verification path is hashFile, the one sequential
# read it makes of an existing file before accepting it. Pointing -o at a
# complete file with -sha256 runs exactly that (plus one HEAD request):
# the same file, the same page cache, a whole process like the peers.
# scenario_many: 2,000 files of 64 KiB in one command (issue 18: ≤ 2×
# curl -Z --parallel-max 16, every file durable).
scenario_many() {
	local out=$WORK/out list=$WORK/many.list rep i f n cmd tools=(omd curl aria2c) urls=()
	for ((n = 1; n <= MANY_COUNT; n++)); do
		urls+=("http://127.0.0.1:$FAST_PORT/many/$(printf 'm%04d.bin' "$n")")
	done
	printf '%s\n' "${urls[@]}" >"$list"
	for ((rep = 1; rep <= REPS; rep++)); do
		for i in $(rotate ${#tools[@]} "$rep"); do
			case ${tools[i]} in
			omd) cmd=("$OMD" -concurrency "$PARALLEL" -output-dir "$out" "${urls[@]}") ;;
			curl) cmd=(curl -sS -f -Z --parallel-max "$PARALLEL" --output-dir "$out" --remote-name-all "${urls[@]}") ;;
			aria2c) cmd=(aria2c -j"$PARALLEL" -q -d "$out" -i "$list") ;;
			esac
			if run_one many "${tools[i]}" "$rep" "$out" "${cmd[@]}" && ((rep == 1)); then
				for ((n = 1; n <= MANY_COUNT; n += 97)); do
					f=$(printf 'm%04d.bin' "$n")
					check_same "$out/$f" "$WWW/many/$f" "$rep"
				done
			fi
			rm -rf "$out"
		done
	done
}

# scenario_history: one tiny download by a command whose output folder's
# history already holds 100,000 records, against the same in an empty
# folder (issue 18: ≤ 50 ms and ≤ 20 MB RSS). The folder is copied fresh
# for every run; the record must reach history.json.
scenario_history() {
	local fixture=$WORK/history-fixture out=$WORK/out rep t0 t1 rss url=http://127.0.0.1:$FAST_PORT/tiny.bin kind
	if [[ ! -d $fixture/.history ]]; then
		say "writing a 100,000-record history"
		(cd "$ROOT" && go test -run '^TestHistoryFixture$' -count 1 ./internal/history -args -history-fixture "$fixture") >/dev/null ||
			die "could not write the history fixture"
	fi
	for ((rep = 1; rep <= REPS; rep++)); do
		for kind in omd-100k omd-empty; do
			rm -rf "$out"
			if [[ $kind == omd-100k ]]; then cp -a "$fixture" "$out"; else mkdir -p "$out"; fi
			sync
			# EPOCHREALTIME, not date: two forks of date would be a good
			# part of a 30 ms run.
			t0=${EPOCHREALTIME/./}
			/usr/bin/time -f %M -o "$LOGS/history.rss" "$OMD" -output-dir "$out" "$url" >/dev/null 2>&1 || die "history run failed"
			t1=${EPOCHREALTIME/./}
			rss=$(tail -n 1 "$LOGS/history.rss")
			grep -q '"source":"http://127.0.0.1:'"$FAST_PORT"'/tiny.bin"' "$out/.history/history.json" ||
				die "the record did not reach history.json"
			printf 'history\t%s\t%s\t%s\t%s\t-\n' "$kind" "$rep" $((t1 - t0)) "$rss" >>"$RAW"
			say "history $kind rep $rep: $(((t1 - t0) / 1000)) ms, $rss KiB"
		done
	done
	rm -rf "$out"
}

scenario_sha() {
	local url=http://127.0.0.1:$FAST_PORT/big.bin out=$WORK/out file=$WWW/big.bin want rep i cmd tools=(omd openssl sha256sum)
	want=$(sha256sum "$file" | cut -d' ' -f1) # also warms the page cache
	for ((rep = 1; rep <= REPS; rep++)); do
		for i in $(rotate ${#tools[@]} "$rep"); do
			case ${tools[i]} in
			omd) cmd=("$OMD" -output-dir "$out" -sha256 "$want" -o "$file" "$url") ;;
			openssl) cmd=(openssl dgst -sha256 "$file") ;;
			sha256sum) cmd=(sha256sum "$file") ;;
			esac
			if run_one sha "${tools[i]}" "$rep" "$out" "${cmd[@]}"; then
				grep -q "$want\|done:" "$LOGS/sha-${tools[i]}-$rep.out" || die "sha ${tools[i]}: wrong digest"
			fi
			rm -rf "$out"
		done
	done
}

# scenario_state watches <file>.part.json while omd fetches the throttled
# file: every replacement of the sidecar is a resume point (the .part was
# synced first), so the gaps between mtimes are what a crash can lose.
scenario_state() {
	local url=http://127.0.0.1:$SLOW_PORT/mid.bin out=$WORK/out-state side pid t0 i last="" m saved
	rm -rf "$out"
	mkdir -p "$out"
	side=$out/mid.bin.part.json
	: >"$STATE"
	t0=$(date +%s%N)
	"$OMD" -output-dir "$out" "$url" >"$LOGS/state.out" 2>"$LOGS/state.err" &
	pid=$!
	for ((i = 0; i < 3000; i++)); do # 20 ms polls, at most 60 s
		kill -0 "$pid" 2>/dev/null || break
		if m=$(stat -c %.9Y "$side" 2>/dev/null) && [[ $m != "$last" ]]; then
			last=$m
			# saved bytes = size - the missing ranges the sidecar lists
			saved=$({ tr -d ' \n' <"$side"; } 2>/dev/null | awk '{
				size = 0; if (match($0, /"size":[0-9]+/)) size = substr($0, RSTART + 7, RLENGTH - 7)
				missing = 0; s = $0
				while (match(s, /\[[0-9]+,[0-9]+\]/)) {
					split(substr(s, RSTART + 1, RLENGTH - 2), r, ","); missing += r[2] - r[1]
					s = substr(s, RSTART + RLENGTH)
				}
				print size - missing }')
			printf '%s\t%s\t%s\n' "$(((${m/./} / 1000 - t0 / 1000)))" "$m" "$saved" >>"$STATE"
		fi
		sleep 0.02
	done
	wait "$pid" || die "omd failed in the state scenario: $(tail -n 3 "$LOGS/state.err")"
	check_same "$out/mid.bin" "$WWW/mid.bin" 1
	rm -rf "$out"
	say "state: $(wc -l <"$STATE") sidecar saves seen"
}

# scenario_rss16: peak memory with every connection busy: the 1 GiB file
# from the throttled server, where omd's slow start reaches 16 connections.
scenario_rss16() {
	local url=http://127.0.0.1:$SLOW_PORT/big.bin out=$WORK/out
	if run_one rss16 omd 1 "$out" "$OMD" -v -output-dir "$out" "$url"; then
		check_same "$out/big.bin" "$WWW/big.bin" 2
	fi
	if run_one rss16 aria2c 1 "$out" aria2c -x16 -s16 -k1M -q -d "$out" -o big.bin "$url"; then
		check_same "$out/big.bin" "$WWW/big.bin" 2
	fi
	rm -rf "$out"
}

# --- Models against the stock Ollama (issue 15) -----------------------------

# ollama_bin finds the stock Ollama: $OLLAMA_BIN, the shared tools folder,
# ollama on PATH.
ollama_bin() {
	local p
	for p in "${OLLAMA_BIN:-}" "$ROOT/../shared/tools/ollama" "$ROOT/../../shared/tools/ollama" "$(command -v ollama 2>/dev/null || true)"; do
		[[ -n $p && -x $p ]] && { echo "$p"; return; }
	done
	die "the stock Ollama is missing: set OLLAMA_BIN"
}

# start_registry port cdn_port: Debian's docker-registry on the shared
# storage, redirecting blob GETs to http://localhost:cdn_port (another host
# name: the stock Ollama follows a blob redirect only to another host).
start_registry() {
	local port=$1 cdn=$2 dir=$WORK/registry-$1 i
	mkdir -p "$dir"
	cat >"$dir/config.yml" <<-EOF
	version: 0.1
	log:
	  level: warn
	  accesslog:
	    disabled: true
	storage:
	  filesystem:
	    rootdirectory: $WORK/registry-storage
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
	env -i PATH=/usr/bin:/bin docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
	OTHER_PIDS+=($!)
	for ((i = 0; i < 100; i++)); do
		curl -sf -o /dev/null "http://127.0.0.1:$port/v2/" && return
		sleep 0.1
	done
	die "docker-registry did not start on $port: $(tail -n 5 "$dir/log")"
}

# ollama_serve models: a stock `ollama serve` on that models folder, its
# pid in OLLAMA_PID; ollama_stop ends it.
ollama_serve() {
	local models=$1 i
	mkdir -p "$models" "$WORK/ollama-home"
	env -i PATH=/usr/bin:/bin HOME="$WORK/ollama-home" OLLAMA_MODELS="$models" OLLAMA_HOST=127.0.0.1:$OLLAMA_PORT \
		OLLAMA_NO_CLOUD=1 "$OLLAMA" serve >"$LOGS/ollama-serve.log" 2>&1 &
	OLLAMA_PID=$!
	for ((i = 0; i < 200; i++)); do
		curl -sf -o /dev/null "http://127.0.0.1:$OLLAMA_PORT/api/version" && return
		sleep 0.05
	done
	die "ollama serve did not start: $(tail -n 5 "$LOGS/ollama-serve.log")"
}

ollama_stop() {
	kill "$OLLAMA_PID" 2>/dev/null || true
	wait "$OLLAMA_PID" 2>/dev/null || true
}

ollama_cli() {
	env -i PATH=/usr/bin:/bin HOME="$WORK/ollama-home" OLLAMA_HOST=127.0.0.1:$OLLAMA_PORT "$OLLAMA" "$@"
}

# setup_ollama (once per run): the GGUF, both CDNs and registries, and the
# model made and pushed by the stock Ollama.
setup_ollama() {
	[[ -n ${OLLAMA_READY:-} ]] && return
	command -v docker-registry >/dev/null || die "docker-registry is missing: apt-get install docker-registry"
	OLLAMA=$(ollama_bin)
	local gguf=$WORK/bench-$OLLAMA_MIB.gguf src=$WORK/ollama-src
	[[ -f $gguf ]] || (cd "$ROOT" && go run ./bench/gguf -size "${OLLAMA_MIB}M" -o "$gguf")
	rm -rf "$WORK/registry-storage" "$WORK/ollama-maker"
	mkdir -p "$WORK/registry-storage/docker/registry/v2" "$src"
	start_nginx cdn "$CDN_PORT" 0 "$WORK/registry-storage"
	start_nginx cdn-capped "$CDN_CAPPED_PORT" "$OLLAMA_RATE" "$WORK/registry-storage"
	start_registry "$REG_PORT" "$CDN_PORT"
	start_registry "$REG_CAPPED_PORT" "$CDN_CAPPED_PORT"
	ln -sf "$gguf" "$src/model.gguf"
	printf 'FROM ./model.gguf\nLICENSE """omd bench license"""\nPARAMETER temperature 0.5\n' >"$src/Modelfile"
	say "making and pushing the ${OLLAMA_MIB} MiB model with the stock Ollama"
	ollama_serve "$WORK/ollama-maker"
	(cd "$src" && ollama_cli create benchmodel -f Modelfile >"$LOGS/ollama-create.log" 2>&1) || die "ollama create failed: $(tail -n 3 "$LOGS/ollama-create.log")"
	ollama_cli cp benchmodel "127.0.0.1:$REG_PORT/library/benchmodel:latest" >/dev/null
	ollama_cli push --insecure "127.0.0.1:$REG_PORT/library/benchmodel:latest" >"$LOGS/ollama-push.log" 2>&1 || die "ollama push failed: $(tail -n 3 "$LOGS/ollama-push.log")"
	ollama_stop
	rm -rf "$WORK/ollama-maker"
	OLLAMA_READY=1
}

# peak_disk dir pid: the largest disk use (du, allocated bytes) of dir
# while pid runs, sampled every 20 ms.
peak_disk() {
	local dir=$1 pid=$2 peak=0 n
	while kill -0 "$pid" 2>/dev/null; do
		n=$(du -s -B1 "$dir" 2>/dev/null | cut -f1) || n=0
		((n > peak)) && peak=$n
		sleep 0.02
	done
	echo "$peak"
}

# ollama_scenario scen registry_port: stock `ollama pull`, `omd install
# NAME` and the omd zip of the same model, into the same disk, rotated.
ollama_scenario() {
	local scen=$1 port=$2 out=$WORK/out rep i cmd ref tools=(ollama omd omd-zip) empty=$WORK/no-models
	setup_ollama
	ref=127.0.0.1:$port/library/benchmodel:latest
	mkdir -p "$empty"
	for ((rep = 1; rep <= OLLAMA_REPS; rep++)); do
		for i in $(rotate ${#tools[@]} "$rep"); do
			rm -rf "$out" "$WORK/ollama-models"
			local runout=$out
			case ${tools[i]} in
			ollama)
				# The server runs (untimed) on a fresh folder; the pull is timed.
				ollama_serve "$WORK/ollama-models"
				cmd=(env -i PATH=/usr/bin:/bin HOME="$WORK/ollama-home" OLLAMA_HOST=127.0.0.1:$OLLAMA_PORT "$OLLAMA" pull --insecure "$ref")
				;;
			# $OLLAMA_MODELS points at an empty folder: nothing is reused.
			omd) cmd=(env OLLAMA_MODELS="$empty" "$OMD" install "$ref" -models-dir "$out/models" -registry "http://127.0.0.1:$port" -output-dir "$out/state") ;;
			omd-zip) cmd=(env OLLAMA_MODELS="$empty" "$OMD" -output-dir "$out/zip" -registry "http://127.0.0.1:$port" "$ref") ;;
			esac
			run_one "$scen" "${tools[i]}" "$rep" "$runout" "${cmd[@]}" || true
			if [[ ${tools[i]} == ollama ]]; then
				ollama_stop
				rm -rf "$WORK/ollama-models"
			fi
			if [[ ${tools[i]} == omd-zip && $rep == 1 ]]; then
				"$OMD" verify "$out/zip/benchmodel-latest.zip" >"$LOGS/$scen-verify.log" 2>&1 || die "the zip does not verify: $(tail -n 3 "$LOGS/$scen-verify.log")"
			fi
		done
	done
	# Peak disk use of the zip pull, against the model's size.
	rm -rf "$out"
	mkdir -p "$out/zip"
	env OLLAMA_MODELS="$empty" "$OMD" -output-dir "$out/zip" -registry "http://127.0.0.1:$port" "$ref" >/dev/null 2>&1 &
	local pid=$! peak
	peak=$(peak_disk "$out" "$pid")
	wait "$pid" || die "omd zip failed"
	printf '%s\t%s\t%s\n' "$scen" "$peak" "$(stat -c %s "$out/zip/benchmodel-latest.zip")" >>"$RESULTS/disk.tsv"
	say "$scen: zip peak disk $((peak >> 20)) MiB for a $(($(stat -c %s "$out/zip/benchmodel-latest.zip") >> 20)) MiB zip"
	rm -rf "$out"
}

scenario_ollama() { ollama_scenario ollama "$REG_PORT"; }
scenario_ollama_capped() { ollama_scenario ollama_capped "$REG_CAPPED_PORT"; }
scenario_cache() { REPS=$REPS OMD_BIN=$OMD bash "$BENCH/cache.sh"; } # the LAN cache with the stock Ollama: bench/cache.sh

scenario_gobench() {
	say "go test -bench (hashing, loopback engine)"
	(cd "$ROOT" && go test -run '^$' -bench . -benchtime 5x -count 1 ./internal/engine) >"$RESULTS/gobench.txt" 2>&1 ||
		die "go test -bench failed: $(tail -n 5 "$RESULTS/gobench.txt")"
}

# summarize prints the medians, the ratios and the targets as markdown.
summarize() {
	awk -F'\t' -v big="$BIG_MIB" -v thr="$THROTTLED_MIB" -v small="$SMALL_COUNT" -v many="$MANY_COUNT" -v reps="$REPS" -v rate="$RATE" \
		-v state="$STATE" -v gobench="$RESULTS/gobench.txt" -v omib="$OLLAMA_MIB" -v orate="$OLLAMA_RATE" -v disk="$RESULTS/disk.tsv" '
	function median(key,   n, i, j, t, v) {
		n = split(walls[key], v, " ")
		for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
		return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
	}
	function mib(scen) { return scen ~ /^ollama/ ? omib : scen == "big" || scen == "sha" || scen == "rss16" ? big : scen == "throttled" || scen == "cut" ? thr : scen == "many" ? many / 16 : scen == "history" ? 1 / 256 : small }
	{
		key = $1 SUBSEP $2
		if (!(key in walls)) { order[++count] = key }
		walls[key] = walls[key] " " $4
		runs[key]++
		if ($5 + 0 > peak[key]) peak[key] = $5 + 0
		if ($6 != "-" && $6 != "") gets[key] = gets[key] (gets[key] == "" ? "" : ",") $6
		if ($8 + 0 > 0 && $7 / $8 > sentRatio[key]) sentRatio[key] = $7 / $8
	}
	END {
		print "# omd benchmark: medians of " reps " repetitions"
		print ""
		print "Same machine, same run, files served by nginx on 127.0.0.1 (throttled: limit_rate " rate " per connection)."
		print "omd ÷ peer < 1 means omd is faster. Peak RSS is the largest of the runs (GNU time %M)."
		print "omd GET requests (from -v) = requests per run. Sent ÷ kept = bytes the servers sent (nginx $bytes_sent,"
		print "or what the cut proxy counted) over the bytes the download kept, the largest of the runs (issue 22)."
		print ""
		print "| scenario | tool | runs | median wall (s) | MB/s | peak RSS (MiB) | omd ÷ tool (wall) | omd GET requests | sent ÷ kept (max) |"
		print "|---|---|---|---|---|---|---|---|---|"
		for (c = 1; c <= count; c++) {
			split(order[c], k, SUBSEP)
			m[order[c]] = median(order[c]) / 1e6
		}
		for (c = 1; c <= count; c++) {
			split(order[c], k, SUBSEP)
			o = k[1] SUBSEP "omd"
			ratio = (o in m) && k[2] != "omd" ? sprintf("%.2f", m[o] / m[order[c]]) : "—"
			printf "| %s | %s | %d | %.3f | %.0f | %.1f | %s | %s | %s |\n", k[1], k[2], runs[order[c]], m[order[c]],
				mib(k[1]) * 1048576 / 1e6 / m[order[c]], peak[order[c]] / 1024, ratio, (order[c] in gets ? gets[order[c]] : ""),
				(order[c] in sentRatio ? sprintf("%.4f", sentRatio[order[c]]) : "")
		}
		print ""
		print "## Targets (issues 8, 18 and 22)"
		print ""
		print "| target | measured | met |"
		print "|---|---|---|"
		target("big", "curl", 1.0, "unthrottled " big " MiB: omd ≤ 1.0× curl -o")
		target("big", "curl+sync", 1.0, "(context) unthrottled " big " MiB: omd ÷ curl -o then sync, the same durability")
		target("throttled", "axel", 1.0, "throttled " thr " MiB: omd ≤ 1.0× axel -n16")
		target("throttled", "axel+sync", 1.0, "(context) throttled " thr " MiB: omd ÷ axel -n16 then sync, the same durability")
		target("throttled", "aria2c", 0.9, "throttled " thr " MiB: omd ≤ 0.9× aria2c -x16 -s16 -k1M")
		target("small", "curl", 1.0, small " × 1 MiB: omd ≤ 1.0× curl -Z --parallel-max 16")
		target("small", "aria2c", 1.0, small " × 1 MiB: omd ≤ 1.0× aria2c -j16 -i list")
		target("many", "curl", 2.0, many " × 64 KiB: omd ≤ 2× curl -Z --parallel-max 16 (issue 18)")
		target("many", "curl", 1.5, many " × 64 KiB: omd ≤ 1.5× curl -Z --parallel-max 16, every file durable (issue 22)")
		sent("big", 1.02, "unthrottled " big " MiB")
		sent("throttled", 1.02, "throttled " thr " MiB (" rate " per connection)")
		sent("cut", 1.03, thr " MiB, every connection cut after 2 MiB")
		sent("ollama", 1.02, "model pull, full speed (install NAME)")
		sent("ollama_capped", 1.02, "model pull, CDN capped at " orate "/connection (install NAME)")
		o = "history" SUBSEP "omd-100k"
		if (o in m) printf "| one 4 KiB download beside a 100,000-record history: ≤ 50 ms and ≤ 20 MB RSS (issue 18; empty folder: %.0f ms) | %.0f ms, %.1f MiB | %s |\n", m["history" SUBSEP "omd-empty"] * 1000, m[o] * 1000, peak[o] / 1024, (m[o] <= 0.05 && peak[o] <= 20 * 1024 * 1.048576 ? "yes" : "**no**")
		target("sha", "openssl", 1 / 0.9, "SHA-256 of " big " MiB: omd speed ≥ 0.9× openssl dgst (wall ≤ 1.11×)")
		o = "rss16" SUBSEP "omd"
		if (o in peak) printf "| peak RSS < 32 MiB, %d MiB throttled (needs 16 connections; omd made %s GET requests) | %.1f MiB | %s |\n", big, gets[o], peak[o] / 1024, (peak[o] < 32768 ? "yes" : "**no**")
		o = "big" SUBSEP "omd"
		if (o in peak) printf "| peak RSS, %d MiB unthrottled (default flags) < 32 MiB | %.1f MiB | %s |\n", big, peak[o] / 1024, (peak[o] < 32768 ? "yes" : "**no**")
		modelTargets()
		stateSummary()
		if ((getline line < gobench) > 0) {
			print ""
			print "## go test -bench"
			print ""
			print "```"
			do { if (line ~ /^Benchmark|^cpu:/) print line } while ((getline line < gobench) > 0)
			print "```"
		}
	}
	function sent(scen, limit, text,   o, z) {
		o = scen SUBSEP "omd"
		if (!(o in sentRatio)) return
		printf "| bytes sent ≤ %.2f× bytes kept: %s (issue 22) | %.4f× | %s |\n", limit, text, sentRatio[o], (sentRatio[o] <= limit ? "yes" : "**no**")
		z = scen SUBSEP "omd-zip"
		if (z in sentRatio) printf "| bytes sent ≤ %.2f× bytes kept: %s, the zip (issue 22) | %.4f× | %s |\n", limit, text, sentRatio[z], (sentRatio[z] <= limit ? "yes" : "**no**")
	}
	function target(scen, peer, limit, text,   o, p, r) {
		o = scen SUBSEP "omd"; p = scen SUBSEP peer
		if (!(o in m) || !(p in m)) return
		r = m[o] / m[p]
		printf "| %s | %.2f× | %s |\n", text, r, (r <= limit ? "yes" : "**no**")
	}
	function modelTargets(   line, v) {
		if (!(("ollama" SUBSEP "ollama") in m) && !(("ollama_capped" SUBSEP "ollama") in m)) return
		print ""
		print "## Models against a stock ollama pull (issue 15)"
		print ""
		print "A " omib " MiB model made and pushed by the stock Ollama to Docker Distribution, blobs redirected to a local"
		print "nginx CDN (capped: limit_rate " orate " per connection); each tool into an empty folder on the same disk."
		print "omd = `install NAME` (straight into the models folder), omd-zip = the zip pull."
		print ""
		print "| target | measured | met |"
		print "|---|---|---|"
		pair("ollama", "omd", "ollama", 1.0, "full speed: install NAME ≤ 1.0× ollama pull")
		pair("ollama", "omd-zip", "ollama", 1.0, "full speed: zip ≤ 1.0× ollama pull")
		pair("ollama_capped", "omd", "ollama", 0.25, "CDN capped at " orate "/connection: install NAME ≤ 0.25× ollama pull")
		pair("ollama_capped", "omd-zip", "ollama", 0.25, "CDN capped at " orate "/connection: zip ≤ 0.25× ollama pull")
		while ((getline line < disk) > 0) {
			split(line, v, "\t")
			printf "| %s: peak disk of the zip pull ≈ one model size | %.0f MiB for a %.0f MiB zip (%.2f×) | %s |\n", v[1], v[2] / 1048576, v[3] / 1048576, v[2] / v[3], (v[2] <= v[3] * 1.05 ? "yes" : "**no**")
		}
	}
	function pair(scen, a, b, limit, text,   x, y, r) {
		x = scen SUBSEP a; y = scen SUBSEP b
		if (!(x in m) || !(y in m)) return
		r = m[x] / m[y]
		printf "| %s | %.2f× (%.2f s vs %.2f s) | %s |\n", text, r, m[x], m[y], (r <= limit ? "yes" : "**no**")
	}
	function stateSummary(   n, i, t, gaps, prev, maxgap, first, v, sum) {
		n = 0
		while ((getline line < state) > 0) { split(line, v, "\t"); t[++n] = v[1] / 1000 }
		if (n == 0) return
		print ""
		print "## Resume state (" thr " MiB throttled, omd default flags)"
		print ""
		maxgap = 0
		for (i = 2; i <= n; i++) { g = t[i] - t[i-1]; sum += g; if (g > maxgap) maxgap = g }
		printf "%d saves of the .part.json; first after %.0f ms; mean gap %.0f ms; longest gap %.0f ms.\n",
			n, t[1], (n > 1 ? sum / (n - 1) : 0), maxgap
	}
	' "$RAW"
}

main() {
	install_tools
	mkdir -p "$WORK" "$RESULTS" "$WWW/small" "$LOGS"
	if [[ -z ${OMD_BIN:-} ]]; then
		say "building omd"
		(cd "$ROOT" && go build -o "$OMD" .)
	fi
	make_file "$WWW/big.bin" "$BIG_MIB"
	make_file "$WWW/mid.bin" "$THROTTLED_MIB"
	head -c 4096 /dev/urandom >"$WWW/tiny.bin"
	local n
	if [[ " $SCENARIOS " == *" many "* ]]; then
		mkdir -p "$WWW/many"
		for ((n = 1; n <= MANY_COUNT; n++)); do
			f=$WWW/many/$(printf 'm%04d.bin' "$n")
			[[ -f $f ]] || head -c 65536 /dev/urandom >"$f"
		done
	fi
	for ((n = 1; n <= SMALL_COUNT; n++)); do
		make_file "$WWW/small/$(printf 'f%03d.bin' "$n")" 1 2>/dev/null
	done
	start_nginx fast "$FAST_PORT" 0
	start_nginx slow "$SLOW_PORT" "$RATE"
	: >"$RAW"
	rm -f "$STATE" "$RESULTS/gobench.txt" "$FAILURES" "$RESULTS/disk.tsv"
	local s
	for s in $SCENARIOS; do
		say "scenario $s"
		"scenario_$s"
	done
	{
		summarize
		if [[ -s $FAILURES ]]; then
			printf '\n## Failed runs (left out of the medians)\n\n'
			sed 's/^/- /' "$FAILURES"
		fi
	} | tee "$RESULTS/latest.md"
	say "written: $RESULTS/latest.md (raw runs: $RAW)"
}

main "$@"
