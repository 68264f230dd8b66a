#!/usr/bin/env bash
# Verifies a Requiem proof archive (Export-RequiemProof) with standard tools only: tar, b3sum, openssl, jq, base64.
# Usage: verify-proof-by-hand.sh <proof.tar> [signer.pub.pem]     Exit 0 = every check passed.
# Checks: every object is BLAKE3("cas:"||bytes) of its name; the DSSE signature over the PAE (openssl); the keyid;
# the request digest (req:); the result digest (res:); the outputs and policy named by the result.
# and the Merkle root (construction in docs/CONTRACT.md, "Proof bundle"), with b3sum.
set -euo pipefail
archive=$(realpath "$1"); pub=${2:+$(realpath "$2")}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; cd "$work"
tar -xf "$archive"
fail() { echo "FAIL: $*"; exit 1; }
for f in objects/*; do
  [ "$( (printf 'cas:'; cat "$f") | b3sum --no-names)" = "${f#objects/}" ] || fail "object $f does not hash to its name"
done
echo "ok: $(ls objects | wc -l) objects hash to their names"
if [ "$(jq -r 'has("payloadType")' proof.json)" = true ]; then
  [ -n "$pub" ] || fail "the proof is signed: give the signer's public key"
  jq -r .payload proof.json | base64 -d > payload.bin
  type=$(jq -r .payloadType proof.json)
  { printf 'DSSEv1 %d %s %d ' "${#type}" "$type" "$(stat -c %s payload.bin)"; cat payload.bin; } > pae.bin
  jq -r '.signatures[0].sig' proof.json | base64 -d > sig.der
  openssl dgst -sha256 -verify "$pub" -signature sig.der pae.bin >/dev/null || fail "signature does not verify"
  keyid=$(openssl pkey -pubin -in "$pub" -outform DER | sha256sum | cut -d' ' -f1)
  [ "$keyid" = "$(jq -r '.signatures[0].keyid' proof.json)" ] || fail "keyid is not the SHA-256 of the public key"
  echo "ok: signature verified by openssl (keyid $keyid)"
else
  head -c -1 proof.json > payload.bin
fi
b() { jq -r "$1" payload.bin; }
[ "$( (printf 'req:'; cat "objects/$(b .request_object)") | b3sum --no-names)" = "$(b .request_digest)" ] || fail "request digest"
echo "ok: request object hashes (req:) to request_digest"
t=objects/$(b .replay_transcript_digest)
# The stored transcript is canonical JSON already; dropping three members and sorting keeps it canonical.
[ "$(jq -cS 'del(.result_digest, .duration_ms, .started_at)' "$t" | tr -d '\n' | (printf 'res:'; cat) | b3sum --no-names)" = "$(b .result_digest)" ] \
  || fail "result digest"
[ "$(jq -r .result_digest "$t")" = "$(b .result_digest)" ] || fail "transcript result_digest"
echo "ok: transcript hashes (res:) to result_digest"
[ "$(jq -r '[.stdout_digest, .stderr_digest] + [.output_files[].digest] | join(" ")' "$t")" = "$(b '.output_digests | join(" ")')" ] || fail "output digests"
[ "$(jq -r .policy_digest "$t")" = "$(b .policy_digest)" ] || fail "policy digest"
echo "ok: outputs and policy match the transcript"
hexbytes() { printf "$(printf '%s' "$1" | sed 's/../\\x&/g')"; }
leaf() { { printf 'leaf:%s\0' "$1"; cat; } | b3sum --no-names; }
node() { { printf 'node:'; hexbytes "$1"; hexbytes "$2"; } | b3sum --no-names; }
level=()
for field in input_digests output_digests; do
  n=$(b ".$field | length")
  for ((i = 0; i < n; i++)); do level+=("$(hexbytes "$(b ".$field[$i]")" | leaf "$field/$i")"); done
done
for field in policy_digest replay_transcript_digest; do level+=("$(hexbytes "$(b ".$field")" | leaf "$field")"); done
for field in engine_version contract_version; do level+=("$(printf '%s' "$(b ".$field")" | leaf "$field")"); done
for field in request_digest result_digest request_object; do level+=("$(hexbytes "$(b ".$field")" | leaf "$field")"); done
while ((${#level[@]} > 1)); do
  next=()
  for ((i = 0; i + 1 < ${#level[@]}; i += 2)); do next+=("$(node "${level[i]}" "${level[i+1]}")"); done
  if ((${#level[@]} % 2)); then next+=("${level[-1]}"); fi
  level=("${next[@]}")
done
[ "${level[0]}" = "$(b .merkle_root)" ] || fail "merkle root: leaves hash to ${level[0]}"
echo "ok: Merkle root recomputed"
echo "VERIFIED $(b .merkle_root)"
