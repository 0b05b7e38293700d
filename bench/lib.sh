# bench/lib.sh: shared by bench/nginx-run and bench/h2load-run (sourced).

# need_pkg CMD PACKAGE: installs the Debian PACKAGE with apt-get when CMD is
# missing. A policy-rc.d forbids the package from starting its own service
# while it installs (nginx's would bind port 80), and is removed after.
need_pkg() {
	command -v "$1" >/dev/null 2>&1 && return 0
	echo "installing Debian package $2" >&2
	local policy=/usr/sbin/policy-rc.d made=
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1
	fi
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >&2
	local rc=$?
	[ -n "$made" ] && rm -f "$policy"
	return $rc
}

# build_bins: the driver and the servers into bench/results/bin; with BIN
# set, its binaries are used as they are.
build_bins() {
	[ -n "${BIN:-}" ] && return 0
	mkdir -p "$bin"
	(cd "$here" && go build -trimpath -o "$bin/" ./cmd/batonbench ./peers/tableflip)
	(cd "$root" && go build -trimpath -o "$bin/http" ./examples/http)
}

# start_peer NAME ADDR [extra args]: starts examples/http (baton) or the
# tableflip peer on ADDR in the background, pid file $work/peer.pid, log
# $work/peer.log, and waits for the pid file.
start_peer() {
	local name=$1 addr=$2
	shift 2
	case "$name" in
	baton) "$bin/http" -listen "$addr" -pidfile "$work/peer.pid" "$@" >"$work/peer.log" 2>&1 & ;;
	tableflip) "$bin/tableflip" -listen "$addr" -pid-file "$work/peer.pid" "$@" >"$work/peer.log" 2>&1 & ;;
	*) echo "unknown peer $name (baton or tableflip)" >&2; return 2 ;;
	esac
	for _ in $(seq 200); do
		[ -s "$work/peer.pid" ] && return 0
		sleep 0.05
	done
	echo "peer $name did not write its pid file; log:" >&2
	cat "$work/peer.log" >&2
	return 1
}

# stop_peer: ends the current generation (older ones have exited or will
# at their drain's end) and waits a little for it.
stop_peer() {
	local pid
	pid=$(cat "$work/peer.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -KILL "$pid" 2>/dev/null || true
}

# free_port: a loopback TCP port nobody listens on right now, outside the
# range the kernel picks local ports of connections from.
free_port() {
	local p
	while :; do
		p=$((10000 + RANDOM % 22000)) # below the ephemeral range (32768-)
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}
