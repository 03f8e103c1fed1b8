#!/usr/bin/env bash
# Root rotation signed only by the new root key (TUF 5.3.4: a new root must be signed by a
# threshold of the trusted root's keys AND of its own): the mirror serves 2.root.json that
# replaces the root key and the timestamp key with the attacker's, signed only by the new root
# key, and a timestamp signed by the attacker's timestamp key. The client refuses the root,
# naming the file and the signature count, stays on root 1, never takes the attacker's
# timestamp and serves nothing wrong. Control: the same root also signed by the old root key is
# followed by a fresh client (so the refusal is about the missing signature).
. "$(dirname "$0")/lib.sh"

root_one_side new
done_ok
