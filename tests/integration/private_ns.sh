# tests/integration/private_ns.sh: sourced first (before lib.sh) by a test that needs a mount
# namespace of its own (a private /dev/log overlay, bind mounts that vanish with it): it runs the
# test again under `unshare --mount --propagation private`, once. Without unshare the test fails
# under CI=true and is skipped otherwise.
if [ -z "${STORK_PRIVATE_NS:-}" ]; then
	_ns_test=$(basename "$0" .sh)
	if ! command -v unshare >/dev/null; then
		[ "${CI:-}" != true ] || {
			echo "FAIL: $_ns_test: unshare (util-linux) is required under CI" >&2
			exit 1
		}
		echo "# SKIP $_ns_test: unshare is missing" >&2
		exit 77
	fi
	exec unshare --mount --propagation private env STORK_PRIVATE_NS=1 bash "$0" "$@"
fi
