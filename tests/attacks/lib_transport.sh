# shellcheck shell=bash disable=SC2034
# tests/attacks/lib_transport.sh: shared setup of the transport attacks (arbitrary_package,
# mix_and_match, endless_data, slow_retrieval, withholding_mirror); sourced, never run.
# It sources the attack suite's lib.sh (itself built on tests/integration/lib.sh, which has
# read_errno and sha) and adds what these scripts share.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# trusted_line STATE ROLE: ROLE's line ("root", "timestamp", "snapshot", "targets",
# "role alice") of the trusted state text STATE, or nothing.
trusted_line() {
	printf '%s\n' "$1" | grep -E "^  trusted $2 +version " || true
}

# timed_extract MAXKB SECS ARGS...: stork extract --root $ROOT ARGS... with every file it
# writes limited to MAXKB KiB (ulimit -f: a write past it kills it with SIGXFSZ, exit 153) and
# killed after SECS seconds (exit 124); sets RC, OUT, ERR as run does and ELAPSED (whole
# seconds).
timed_extract() {
	local kb=$1 secs=$2 t0
	shift 2
	t0=$(date +%s%N)
	run timeout -k 5 "$secs" bash -c 'ulimit -f "$1" && shift && exec "$@"' sh "$kb" \
		"$STORK" extract --root "$ROOT" "$@"
	ELAPSED=$((($(date +%s%N) - t0) / 1000000000))
}

# TRUST_ROLES: the roles of the trusted state in the order the client workflow checks them.
TRUST_ROLES=(root timestamp snapshot targets "role alice")

# trust_at_most DESC STORE OLD NEW FIRST: STORE's trusted state is OLD for TRUST_ROLES[FIRST..]
# (the attacked file's role and every role checked after it) and, for the roles before it,
# OLD or NEW (NEW: the genuine state a good refresh gives; a refresh that fails at a delegated
# role keeps the top-level roles it verified, verify/README.md "Reading").
trust_at_most() {
	local desc=$1 store=$2 old=$3 new=$4 first=$5 now i role lo ln lnow
	now=$(trusted_state "$store")
	for i in "${!TRUST_ROLES[@]}"; do
		role=${TRUST_ROLES[$i]}
		lo=$(trusted_line "$old" "$role")
		ln=$(trusted_line "$new" "$role")
		lnow=$(trusted_line "$now" "$role")
		if [ "$i" -ge "$first" ]; then
			[ "$lnow" = "$lo" ] || fail "$desc: the trusted $role moved: '$lnow', was '$lo'"
		else
			[ "$lnow" = "$lo" ] || [ "$lnow" = "$ln" ] ||
				fail "$desc: the trusted $role is '$lnow', neither the old '$lo' nor the genuine new '$ln'"
		fi
	done
	pass "$desc"
}
