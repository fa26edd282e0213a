#!/usr/bin/env bash
# Runs faxgate's benchmarks, each beside the tool an administrator would otherwise use,
# and ends with a table of ratios. See bench/README.md for what each one measures.
#
#   bench/run.sh                      every benchmark
#   bench/run.sh smtp merge           only the named ones: smtp merge tiff memory inbound
#   bench/run.sh profile              perf and strace profile of a 50-session SMTP run
#
# Environment, with defaults:
#   BENCH_WORK        folder for inputs, data and logs (a new folder under /tmp)
#   SMTP_MESSAGES     messages per SMTP run (5000)
#   SMTP_SESSIONS     parallel sessions of each SMTP run ("1 10 50")
#   HYPERFINE_RUNS    timed runs per command (10)
#   WEBHOOK_EVENTS    webhooks in the inbound run (1000)
#   PROFILE_MESSAGES  messages per profiled run (2000)
#
# Every server and client listens on or connects to 127.0.0.1 only, and every load is a
# fixed number of messages or requests.

set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH="$ROOT/bench"
WORK="${BENCH_WORK:-$(mktemp -d /tmp/faxgate-bench.XXXXXX)}"
SMTP_MESSAGES="${SMTP_MESSAGES:-5000}"
SMTP_SESSIONS="${SMTP_SESSIONS:-1 10 50}"
HYPERFINE_RUNS="${HYPERFINE_RUNS:-10}"
WEBHOOK_EVENTS="${WEBHOOK_EVENTS:-1000}"
PROFILE_MESSAGES="${PROFILE_MESSAGES:-2000}"
SELECTED="${*:-smtp merge tiff memory inbound}"

FAXGATE="$ROOT/target/release/faxgate"
INPUTS="$WORK/inputs"
RESULTS="$WORK/results.tsv"
SENDER="bench@example.com"
SENDER_NUMBER="+14155550100"
INBOUND_NUMBER="+14155550101"
RECIPIENT="14155552222@fax.example.com"
WEBHOOK_PASSWORD="bench-hook-secret"

DAEMON_PID=""
SINK_PID=""

log() {
    printf '%s\n' "$*" >&2
}

# Prints one figure line and keeps it for the closing table.
# Arguments: name, faxgate value, reference value, ratio, target, verdict.
record() {
    printf '%-34s faxgate=%s reference=%s ratio=%s target=%s %s\n' "$@"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
}

# Prints a figure that has no reference tool beside it.
note() {
    printf '%s\n' "$*"
    printf '%s\t\t\t\t\t%s\n' "${1%%:*}" "${*#*: }" >>"$RESULTS"
}

ratio() {
    python3 -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f"{a / b:.2f}" if b else "n/a")' "$1" "$2"
}

# Prints "met" when `$1 $2 $3` holds for two numbers, such as `0.7 >= 0.5`.
verdict() {
    python3 -c 'import sys, operator as o; a, op, b = sys.argv[1:]; f = {">=": o.ge, "<=": o.le, "<": o.lt}[op]; print("met" if f(float(a), float(b)) else "MISSED")' "$1" "$2" "$3"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until 127.0.0.1:$1 accepts connections, at most $2 seconds (default 60);
# fails after that.
wait_port() {
    python3 - "$1" "${2:-60}" <<'EOF'
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
deadline = time.time() + limit
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit(f"nothing listens on 127.0.0.1:{port} after {limit:.0f} s")
        time.sleep(0.05)
EOF
}

now() {
    date +%s.%N
}

elapsed_since() {
    python3 -c 'import sys, time; print(f"{time.time() - float(sys.argv[1]):.3f}")' "$1"
}

cleanup() {
    if [[ -n "$DAEMON_PID" ]]; then kill "$DAEMON_PID" 2>/dev/null || true; fi
    if [[ -n "$SINK_PID" ]]; then kill "$SINK_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# Writes a configuration into folder $1 with a fresh data folder, maps the sender, and
# starts the daemon. Sets DAEMON_PID, SMTP_PORT, WEBHOOK_PORT and CONFIG.
start_daemon() {
    local dir="$1"
    rm -rf "$dir"
    mkdir -p "$dir"
    SMTP_PORT="$(free_port)"
    WEBHOOK_PORT="$(free_port)"
    local api_port
    api_port="$(free_port)"
    CONFIG="$dir/faxgate.toml"
    cat >"$CONFIG" <<EOF
[gateway]
hostname = "fax.example.com"
domains = ["fax.example.com"]
default_region = "US"
data_dir = "data"

[smtp]
max_message_size = 26214400
# The 50-session runs come from one address, above the default of 20 per client.
max_connections_per_ip = 200

[[smtp.listeners]]
address = "127.0.0.1:$SMTP_PORT"
tls = "none"
auth = "none"

[senders]
check = "both"

[fax]
backend = "outbox"

[webhooks]
address = "127.0.0.1:$WEBHOOK_PORT"
public_url = "http://127.0.0.1:$WEBHOOK_PORT/webhooks/sinch"
username = "sinch"
password = "$WEBHOOK_PASSWORD"

[relay]
backend = "maildir"

[api]
address = "127.0.0.1:$api_port"
EOF
    "$FAXGATE" emails add "$SENDER" --number "$SENDER_NUMBER:both" --config "$CONFIG" >/dev/null
    ${DAEMON_WRAPPER:-} "$FAXGATE" run --config "$CONFIG" >"$dir/daemon.log" 2>&1 &
    DAEMON_PID=$!
    wait_port "$SMTP_PORT"
}

stop_daemon() {
    kill -TERM "$DAEMON_PID"
    wait "$DAEMON_PID" || true
    DAEMON_PID=""
}

# Prints the number of jobs of kind $1 (fax, inbound, report, postmaster) in the
# daemon's store, in any state. `queue list` prints the id and then the kind.
job_count() {
    "$FAXGATE" queue list --config "$CONFIG" | awk -v kind="$1" '$2 == kind' | wc -l
}

start_sink() {
    SINK_PORT="$(free_port)"
    local user=()
    # smtp-sink refuses to run as root without a user to switch to.
    if [[ "$(id -u)" == 0 ]]; then user=(-u nobody); fi
    smtp-sink "${user[@]}" "127.0.0.1:$SINK_PORT" 256 &
    SINK_PID=$!
    wait_port "$SINK_PORT"
}

stop_sink() {
    kill "$SINK_PID"
    wait "$SINK_PID" 2>/dev/null || true
    SINK_PID=""
}

# Prints the CPU time (user and system, all threads) used so far by process $1, in
# clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# Prints CPU milliseconds per message from two tick counts and a message count.
cpu_ms_per_message() {
    python3 -c 'import os, sys; a, b, n = map(int, sys.argv[1:]); tick = os.sysconf("SC_CLK_TCK"); print(f"{(b - a) * 1000 / tick / n:.2f}")' "$1" "$2" "$3"
}

# Sends SMTP_MESSAGES messages with smtp-source over $2 sessions to port $1; prints the
# rate in messages per second. A reply other than 2xx makes smtp-source fail.
smtp_source_rate() {
    local port="$1" sessions="$2" start seconds
    start="$(now)"
    smtp-source -d -s "$sessions" -m "$SMTP_MESSAGES" -F "$INPUTS/message-source.eml" \
        -f "$SENDER" -t "$RECIPIENT" "127.0.0.1:$port" >&2
    seconds="$(elapsed_since "$start")"
    python3 -c 'import sys; print(f"{int(sys.argv[1]) / float(sys.argv[2]):.1f}")' "$SMTP_MESSAGES" "$seconds"
}

field() {
    # Prints the value of key $1 in a `key=value ...` line $2.
    tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"
}

bench_smtp() {
    log "== SMTP intake: smtp-source to faxgate and to smtp-sink, $SMTP_MESSAGES messages"
    local sessions sink_rate faxgate_rate latency jobs expected accepted ticks sink_cpu faxgate_cpu
    for sessions in $SMTP_SESSIONS; do
        start_sink
        ticks="$(cpu_ticks "$SINK_PID")"
        sink_rate="$(smtp_source_rate "$SINK_PORT" "$sessions")"
        sink_cpu="$(cpu_ms_per_message "$ticks" "$(cpu_ticks "$SINK_PID")" "$SMTP_MESSAGES")"
        stop_sink

        start_daemon "$WORK/smtp-$sessions"
        ticks="$(cpu_ticks "$DAEMON_PID")"
        faxgate_rate="$(smtp_source_rate "$SMTP_PORT" "$sessions")"
        faxgate_cpu="$(cpu_ms_per_message "$ticks" "$(cpu_ticks "$DAEMON_PID")" "$SMTP_MESSAGES")"
        latency="$(python3 "$BENCH/smtp_latency.py" --port "$SMTP_PORT" --sessions "$sessions" \
            --messages "$SMTP_MESSAGES" --sender "$SENDER" --recipient "$RECIPIENT" \
            --message "$INPUTS/message.eml")"
        jobs="$(job_count fax)"
        stop_daemon

        accepted="$(field accepted "$latency")"
        expected=$((SMTP_MESSAGES + accepted))
        local r target_verdict="-"
        r="$(ratio "$faxgate_rate" "$sink_rate")"
        if [[ "$sessions" == 50 ]]; then target_verdict="$(verdict "$r" ">=" 0.5)"; fi
        record "smtp $sessions sessions msg/s" "$faxgate_rate" "$sink_rate" "$r" \
            "$([[ $sessions == 50 ]] && echo '>=0.5' || echo '-')" "$target_verdict"
        record "smtp $sessions sessions CPU ms/msg" "$faxgate_cpu" "$sink_cpu" \
            "$(ratio "$faxgate_cpu" "$sink_cpu")" "-" "-"
        record "smtp $sessions sessions DATA-to-250 p50/p99 ms" \
            "$(field p50_ms "$latency")/$(field p99_ms "$latency")" "-" "-" "-" "-"
        note "smtp $sessions sessions client: $latency"
        if [[ "$jobs" == "$expected" ]]; then
            note "smtp $sessions sessions durability: $jobs jobs stored for $expected replies 250 (met)"
        else
            note "smtp $sessions sessions durability: $jobs jobs stored for $expected replies 250 (MISSED)"
        fi
    done
    note "smtp fsync cost on the data folder's filesystem: $(python3 "$BENCH/fsync_cost.py" "$WORK/fsync-test")"
}

# Times `faxgate convert` and a reference command with hyperfine; prints the two means
# and then the two standard deviations, in seconds. Arguments: label, faxgate command,
# reference command.
hyperfine_pair() {
    local label="$1" faxgate_command="$2" reference_command="$3" json="$WORK/hyperfine-$1.json"
    hyperfine --warmup 2 --runs "$HYPERFINE_RUNS" --export-json "$json" \
        -n faxgate "$faxgate_command" -n reference "$reference_command" >&2
    python3 - "$json" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
print(" ".join(f"{r['mean']:.4f}" for r in results), " ".join(f"{r['stddev']:.4f}" for r in results))
EOF
}

have_convert() {
    "$FAXGATE" convert --help >/dev/null 2>&1
}

bench_merge() {
    log "== PDF merging: faxgate convert against qpdf --empty --pages"
    if ! have_convert; then
        note "merge: not measured: faxgate convert is not on commit $(git -C "$ROOT" rev-parse --short HEAD)"
        return
    fi
    local kind means fg ref fg_sd ref_sd r
    for kind in text scan; do
        means="$(hyperfine_pair "merge-$kind" \
            "$FAXGATE convert $INPUTS/$kind-a.pdf $INPUTS/$kind-b.pdf -o $WORK/merge-$kind-faxgate.pdf" \
            "qpdf --empty --pages $INPUTS/$kind-a.pdf $INPUTS/$kind-b.pdf -- $WORK/merge-$kind-qpdf.pdf")"
        read -r fg ref fg_sd ref_sd <<<"$means"
        r="$(ratio "$fg" "$ref")"
        record "merge 2x $kind PDF time s" "$fg±$fg_sd" "$ref±$ref_sd" "$r" "<=1.0" "$(verdict "$r" "<=" 1.0)"
        note "merge $kind sizes: faxgate $(stat -c %s "$WORK/merge-$kind-faxgate.pdf") bytes, qpdf $(stat -c %s "$WORK/merge-$kind-qpdf.pdf") bytes"
    done
}

bench_tiff() {
    log "== Fax TIFF to PDF: faxgate convert against tiff2pdf"
    # tiffcp's default strips hold about 8 KB (37 rows of 1728 pixels); fax software
    # also writes one strip per page, so both layouts are measured.
    tiffcp -c g4 "$INPUTS/fax-raw.tif" "$INPUTS/fax-g4.tif"
    tiffcp -c g3:2d:fill "$INPUTS/fax-raw.tif" "$INPUTS/fax-g3.tif"
    tiffcp -c g4 -r 2200 "$INPUTS/fax-raw.tif" "$INPUTS/fax-g4-1strip.tif"
    tiffcp -c g3:2d:fill -r 2200 "$INPUTS/fax-raw.tif" "$INPUTS/fax-g3-1strip.tif"
    if ! have_convert; then
        note "tiff: not measured: faxgate convert is not on commit $(git -C "$ROOT" rev-parse --short HEAD)"
        return
    fi
    local kind means fg ref fg_sd ref_sd r size_fg size_ref size_ratio
    for kind in g4 g3 g4-1strip g3-1strip; do
        means="$(hyperfine_pair "tiff-$kind" \
            "$FAXGATE convert $INPUTS/fax-$kind.tif -o $WORK/tiff-$kind-faxgate.pdf" \
            "tiff2pdf -o $WORK/tiff-$kind-tiff2pdf.pdf $INPUTS/fax-$kind.tif")"
        read -r fg ref fg_sd ref_sd <<<"$means"
        r="$(ratio "$fg" "$ref")"
        record "tiff 20-page $kind time s" "$fg±$fg_sd" "$ref±$ref_sd" "$r" "<=1.0" "$(verdict "$r" "<=" 1.0)"
        size_fg="$(stat -c %s "$WORK/tiff-$kind-faxgate.pdf")"
        size_ref="$(stat -c %s "$WORK/tiff-$kind-tiff2pdf.pdf")"
        size_ratio="$(ratio "$size_fg" "$size_ref")"
        record "tiff 20-page $kind output bytes" "$size_fg" "$size_ref" "$size_ratio" "<=1.05" \
            "$(verdict "$size_ratio" "<=" 1.05)"
    done
}

vm_hwm_kib() {
    sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"
}

bench_memory() {
    log "== Memory: 50 sessions each sending a 10 MB PDF at once"
    start_daemon "$WORK/memory"
    local message_bytes result peak_kib in_flight_mb target_mb peak_mb jobs
    message_bytes="$(stat -c %s "$INPUTS/message-10mb.eml")"
    result="$(python3 "$BENCH/smtp_latency.py" --port "$SMTP_PORT" --sessions 50 --messages 50 \
        --sender "$SENDER" --recipient "$RECIPIENT" --message "$INPUTS/message-10mb.eml")"
    peak_kib="$(vm_hwm_kib "$DAEMON_PID")"
    jobs="$(job_count fax)"
    stop_daemon
    in_flight_mb="$(python3 -c 'import sys; print(f"{50 * int(sys.argv[1]) / 1e6:.0f}")' "$message_bytes")"
    target_mb="$(python3 -c 'import sys; print(f"{50 + 3 * float(sys.argv[1]):.0f}")' "$in_flight_mb")"
    peak_mb="$(python3 -c 'import sys; print(f"{int(sys.argv[1]) * 1024 / 1e6:.0f}")' "$peak_kib")"
    record "memory peak RSS MB, 50x10 MB" "$peak_mb" "-" "-" "<$target_mb" "$(verdict "$peak_mb" "<" "$target_mb")"
    note "memory: $in_flight_mb MB in flight (50 messages of $message_bytes bytes), $jobs jobs stored, client: $result"
}

bench_inbound() {
    log "== Inbound: $WEBHOOK_EVENTS INCOMING_FAX webhooks, 20 in parallel, relayed to a Maildir"
    start_daemon "$WORK/inbound"
    # A number of its own, so that each fax has exactly one recipient address.
    "$FAXGATE" emails add inbox@example.com --number "$INBOUND_NUMBER:receive" --config "$CONFIG" >/dev/null
    # A daemon without the webhook receiver does not listen on the webhook address.
    if ! wait_port "$WEBHOOK_PORT" 10 2>/dev/null; then
        stop_daemon
        note "inbound: not measured: the webhook receiver is not on commit $(git -C "$ROOT" rev-parse --short HEAD)"
        return
    fi

    local result delivered jobs
    result="$(python3 "$BENCH/webhook_load.py" --port "$WEBHOOK_PORT" --parallel 20 \
        --events "$WEBHOOK_EVENTS" --password "$WEBHOOK_PASSWORD" --to "$INBOUND_NUMBER" \
        --pdf "$INPUTS/webhook-fax.pdf")"

    # The relay runs behind the 200s; give it up to 120 s to write every email.
    local start deadline=$((SECONDS + 120))
    start="$(now)"
    while :; do
        delivered="$(find "$WORK/inbound/data/maildir/new" -type f 2>/dev/null | wc -l)"
        if ((delivered >= $(field ok_200 "$result") || SECONDS > deadline)); then break; fi
        sleep 0.2
    done
    local relay_seconds
    relay_seconds="$(elapsed_since "$start")"

    jobs="$(job_count inbound)"
    stop_daemon
    record "inbound webhooks/s" "$(field webhooks_per_s "$result")" "-" "-" "-" "-"
    record "inbound time to 200 p50/p99 ms" "$(field p50_ms "$result")/$(field p99_ms "$result")" "-" "-" "-" "-"
    local verdict_text=MISSED
    if [[ "$jobs" == "$(field ok_200 "$result")" ]]; then verdict_text=met; fi
    note "inbound durability: $jobs inbound jobs stored for $(field ok_200 "$result") replies 200 ($verdict_text)"
    note "inbound delivery: $delivered emails in the Maildir, the last $relay_seconds s after the last 200"
    note "inbound client: $result"
}

# Profiles the daemon during a 50-session SMTP run: CPU samples with perf (when it
# can sample here) and system call counts with strace. Not part of the default run.
profile_smtp() {
    log "== Profile: 50 SMTP sessions, $PROFILE_MESSAGES messages, perf and strace"
    local dir="$WORK/profile" client=(python3 "$BENCH/smtp_latency.py" --sessions 50
        --messages "$PROFILE_MESSAGES" --sender "$SENDER" --recipient "$RECIPIENT"
        --message "$INPUTS/message.eml")
    start_daemon "$dir"

    if perf record -e cpu-clock -g -o "$dir/perf.data" -- true >/dev/null 2>&1; then
        perf record -F 499 -e cpu-clock -g -o "$dir/perf.data" -p "$DAEMON_PID" -- sleep 30 \
            >/dev/null 2>&1 &
        local perf_pid=$!
        sleep 1
        echo "profile perf run: $("${client[@]}" --port "$SMTP_PORT")"
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" || true
        echo "profile top symbols (self time, all threads):"
        perf report -i "$dir/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null \
            | grep -v '^#' | grep -v '^$' | head -15 || true
        echo "profile system calls (time in and under each):"
        perf report -i "$dir/perf.data" --children --sort sym --stdio -g none 2>/dev/null \
            | grep -E '__x64_sys_' | head -8 || true
    else
        echo "profile: perf cannot sample on this machine; skipped"
    fi

    # A new daemon, so that its workers have no backlog from the perf run.
    stop_daemon
    start_daemon "$dir-strace"
    # One strace only: a process can have one tracer at a time.
    timeout 90 strace -f -T -qq -o "$dir/strace.txt" -p "$DAEMON_PID" 2>/dev/null &
    local strace_pid=$!
    sleep 1
    echo "profile strace run (slowed by strace): $("${client[@]}" --port "$SMTP_PORT")"
    # The workers keep submitting the queued jobs to the outbox after the client ends.
    sleep 10
    kill -INT "$strace_pid" 2>/dev/null || true
    wait "$strace_pid" 2>/dev/null || true
    stop_daemon

    if command -v eatmydata >/dev/null; then
        # The same load with and without fsync, to measure what the fsyncs cost here.
        # Without fsync a 250 is not durable: this is an experiment, never a setting.
        local with_sync without_sync
        start_daemon "$dir-sync"
        with_sync="$(smtp_source_rate "$SMTP_PORT" 50)"
        stop_daemon
        DAEMON_WRAPPER=eatmydata start_daemon "$dir-nosync"
        without_sync="$(smtp_source_rate "$SMTP_PORT" 50)"
        stop_daemon
        echo "profile smtp-source 50 sessions: $with_sync msg/s with fsync, $without_sync msg/s with fsync made a no-op by eatmydata"
    else
        echo "profile: eatmydata is not installed; the run without fsync is skipped"
    fi

    echo "profile system calls for $PROFILE_MESSAGES messages, intake and outbox workers together:"
    python3 - "$dir/strace.txt" "$PROFILE_MESSAGES" <<'EOF'
import collections, re, sys
calls, seconds, sleeps = collections.Counter(), collections.Counter(), collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    # A call is one line, or an "<unfinished ...>" line and a "<... NAME resumed>" line
    # that carries the time spent in it.
    line = line.strip()
    length = re.search(r"clock_nanosleep\(.*tv_sec=(\d+), tv_nsec=(\d+)", line)
    if length:
        sleeps[int(length.group(1)) * 1000 + int(length.group(2)) / 1e6] += 1
    match = re.match(r"\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\().*<([\d.]+)>$", line)
    if not match:
        continue
    name = match.group(1) or match.group(2)
    calls[name] += 1
    seconds[name] += float(match.group(3))
messages = int(sys.argv[2])
for name, count in calls.most_common(12):
    print(f"  {name:<16} {count:>8} calls  {count / messages:7.1f} per message  {seconds[name]:8.2f} s")
print("profile clock_nanosleep calls by sleep length in ms (SQLite's busy handler sleeps 1 to 100 ms):")
for length, count in sorted(sleeps.items()):
    print(f"  {length:g} ms: {count}")
EOF
}

main() {
    mkdir -p "$WORK"
    : >"$RESULTS"
    log "work folder: $WORK"
    (cd "$ROOT" && cargo build --release --locked --bin faxgate >&2)
    python3 "$BENCH/make_inputs.py" "$INPUTS" >/dev/null

    echo "commit $(git -C "$ROOT" rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    local name
    for name in $SELECTED; do
        case "$name" in
            smtp) bench_smtp ;;
            merge) bench_merge ;;
            tiff) bench_tiff ;;
            memory) bench_memory ;;
            inbound) bench_inbound ;;
            profile) profile_smtp ;;
            *) log "unknown benchmark: $name (expected smtp, merge, tiff, memory, inbound or profile)"; exit 2 ;;
        esac
    done
    echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

    echo
    echo "| figure | faxgate | reference | ratio | target | result |"
    echo "|---|---|---|---|---|---|"
    awk -F'\t' '$2 != "" { printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6 }' "$RESULTS"
}

main
