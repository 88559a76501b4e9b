#!/usr/bin/env bash
# Self-test of the JavaScript AWS Encryption SDK harness: JS encrypt, then JS decrypt.
#   tests/interop/esdk-js/selftest.sh [HARNESS_DIR]
# HARNESS_DIR holds an installed esdk.js (see scripts/install-npm-deps); without it the
# harness is installed into /tmp/esdk-js-check first. Exits non-zero if any check fails.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -ge 1 ]; then
  harness_dir=$1
else
  harness_dir=/tmp/esdk-js-check
  "$here/../../../scripts/install-npm-deps" "$harness_dir" || exit 1
fi
esdk="$harness_dir/esdk.js"
[ -f "$esdk" ] || { echo "selftest: no $esdk" >&2; exit 1; }
command -v openssl >/dev/null || { echo "selftest: openssl not found" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

js() { node "$esdk" "$@"; }

# roundtrip NAME PLAINTEXT "ENCRYPT ARGS" "DECRYPT ARGS": encrypt, decrypt, compare.
roundtrip() {
  local name=$1 pt=$2 enc=$3 dec=$4
  # shellcheck disable=SC2086
  if ! js encrypt $enc <"$pt" >"$tmp/m" 2>"$tmp/err"; then
    bad "$name: encrypt failed: $(cat "$tmp/err")"; return
  fi
  # shellcheck disable=SC2086
  if ! js decrypt $dec <"$tmp/m" >"$tmp/out" 2>"$tmp/err"; then
    bad "$name: decrypt failed: $(cat "$tmp/err")"; return
  fi
  if [ -s "$tmp/err" ]; then bad "$name: decrypt wrote to stderr: $(cat "$tmp/err")"; return; fi
  if cmp -s "$pt" "$tmp/out"; then ok; else bad "$name: plaintext differs after round trip"; fi
}

# must_fail NAME INPUT ARGS...: the harness must exit 1, write nothing to stdout and
# exactly one "esdk.js: ..." line to stderr.
must_fail() {
  local name=$1 input=$2
  shift 2
  if js "$@" <"$input" >"$tmp/fout" 2>"$tmp/ferr"; then
    bad "$name: succeeded, expected failure"; return
  fi
  if [ -s "$tmp/fout" ]; then bad "$name: failed but wrote $(stat -c %s "$tmp/fout") bytes to stdout"; return; fi
  if [ "$(wc -l <"$tmp/ferr")" -ne 1 ] || ! grep -q '^esdk\.js: ' "$tmp/ferr"; then
    bad "$name: stderr is not one 'esdk.js: ' line: $(cat "$tmp/ferr")"; return
  fi
  ok
}

# json_check NAME FILE JS-EXPRESSION-OF-j: the expression must be true for the parsed JSON.
json_check() {
  local name=$1 file=$2 expr=$3
  if node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")); if(!('"$expr"')) { console.error(JSON.stringify(j)); process.exit(1) }' "$file" 2>"$tmp/jerr"; then
    ok
  else
    bad "$name: JSON check ($expr) failed on $(cat "$tmp/jerr")"
  fi
}

# Keys and plaintexts.
head -c 16 /dev/urandom >"$tmp/aes128"
head -c 24 /dev/urandom >"$tmp/aes192"
head -c 32 /dev/urandom >"$tmp/aes256"
head -c 32 /dev/urandom >"$tmp/aes256-other"
head -c 20 /dev/urandom >"$tmp/aes-bad"
for f in rsa rsa-other; do
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/$f.pem" 2>/dev/null \
    || { echo "selftest: openssl genpkey failed" >&2; exit 1; }
done
openssl pkey -in "$tmp/rsa.pem" -pubout -out "$tmp/rsa.pub" 2>/dev/null || exit 1
sizes=(0 1 4095 4096 4097 3145728)
for n in "${sizes[@]}"; do head -c "$n" /dev/urandom >"$tmp/pt$n"; done

A128="--aes ns/aes128:$tmp/aes128"
A192="--aes ns/aes192:$tmp/aes192"
A256="--aes ns/aes256:$tmp/aes256"

echo "== sizes x suites x raw AES key sizes"
for suite in 0478 0578; do
  for aes in "$A128" "$A192" "$A256"; do
    for n in "${sizes[@]}"; do
      roundtrip "suite $suite ${aes%%:*} size $n" "$tmp/pt$n" "--suite $suite $aes" "$aes"
    done
  done
done

echo "== frame lengths"
roundtrip "frame 1, 4097 bytes" "$tmp/pt4097" "--frame 1 $A256" "$A256"
roundtrip "frame 1000, 4097 bytes" "$tmp/pt4097" "--frame 1000 $A256" "$A256"
roundtrip "frame 1 MiB, 3 MiB" "$tmp/pt3145728" "--frame 1048576 --suite 0578 $A256" "$A256"
roundtrip "frame 4097, 4096 bytes" "$tmp/pt4096" "--frame 4097 $A256" "$A256"
# An exact multiple of the frame length ends with an empty final frame: the 4096-byte
# message is one 4128-byte regular frame (4+12+4096+16) longer than the empty one.
js encrypt --frame 4096 $A256 <"$tmp/pt0" >"$tmp/m0" && js encrypt --frame 4096 $A256 <"$tmp/pt4096" >"$tmp/m4096"
d=$(( $(stat -c %s "$tmp/m4096") - $(stat -c %s "$tmp/m0") ))
if [ "$d" -eq 4128 ]; then ok; else bad "exact multiple of frame: size difference $d, expected 4128"; fi

echo "== wrong keys and bad input"
js encrypt $A256 <"$tmp/pt4097" >"$tmp/m-aes"
must_fail "decrypt with another AES key" "$tmp/m-aes" decrypt --aes "ns/aes256:$tmp/aes256-other"
must_fail "decrypt with another key name" "$tmp/m-aes" decrypt --aes "ns/other:$tmp/aes256"
must_fail "decrypt with another namespace" "$tmp/m-aes" decrypt --aes "other/aes256:$tmp/aes256"
must_fail "AES key of 20 bytes" "$tmp/pt1" encrypt --aes "ns/bad:$tmp/aes-bad"
must_fail "decrypt of empty input" "$tmp/pt0" decrypt $A256
must_fail "decrypt of garbage" "$tmp/pt4097" decrypt $A256
head -c 3000 "$tmp/m-aes" >"$tmp/m-trunc"
must_fail "decrypt of truncated message" "$tmp/m-trunc" decrypt $A256
cp "$tmp/m-aes" "$tmp/m-flip"
printf '\x00' | dd of="$tmp/m-flip" bs=1 seek=2000 conv=notrunc status=none
must_fail "decrypt of tampered body" "$tmp/m-flip" decrypt $A256
js encrypt --suite 0578 $A256 <"$tmp/pt4097" >"$tmp/m-sig"
len=$(stat -c %s "$tmp/m-sig")
cp "$tmp/m-sig" "$tmp/m-sigflip"
last=$(tail -c 1 "$tmp/m-sig" | od -An -tu1 | tr -d ' ')
printf "\\x$(printf %02x $(( (last + 1) % 256 )))" | dd of="$tmp/m-sigflip" bs=1 seek=$((len - 1)) conv=notrunc status=none
must_fail "decrypt of 0578 message with a bad signature" "$tmp/m-sigflip" decrypt $A256
must_fail "unknown option" "$tmp/pt1" encrypt --bogus $A256
must_fail "no keyring" "$tmp/pt1" encrypt
must_fail "unknown suite" "$tmp/pt1" encrypt --suite 0999 $A256
must_fail "unsigned-only refuses 0578" "$tmp/m-sig" decrypt --unsigned-only $A256
roundtrip "unsigned-only accepts 0478" "$tmp/pt4097" "--suite 0478 $A256" "--unsigned-only $A256"

echo "== raw RSA"
rsa_paddings=()
for pad in oaep-sha1 oaep-sha256 oaep-sha384 oaep-sha512 pkcs1; do
  if js encrypt --rsa "ns/rsa:$tmp/rsa.pub:$pad" <"$tmp/pt1" >"$tmp/m-probe" 2>"$tmp/err" \
     && js decrypt --rsa "ns/rsa:$tmp/rsa.pem:$pad" <"$tmp/m-probe" >/dev/null 2>>"$tmp/err"; then
    rsa_paddings+=("$pad")
  else
    echo "note: RSA padding $pad does not work: $(cat "$tmp/err")"
  fi
done
echo "RSA paddings that work: ${rsa_paddings[*]}"
for pad in oaep-sha1 oaep-sha256; do
  case " ${rsa_paddings[*]} " in *" $pad "*) ok ;; *) bad "RSA padding $pad must work" ;; esac
done
for pad in "${rsa_paddings[@]}"; do
  for suite in 0478 0578; do
    for n in 0 4097; do
      roundtrip "RSA $pad suite $suite size $n" "$tmp/pt$n" \
        "--suite $suite --rsa ns/rsa:$tmp/rsa.pub:$pad" "--rsa ns/rsa:$tmp/rsa.pem:$pad"
    done
  done
  roundtrip "RSA $pad, private key PEM given for encrypt" "$tmp/pt4097" \
    "--rsa ns/rsa:$tmp/rsa.pem:$pad" "--rsa ns/rsa:$tmp/rsa.pem:$pad"
  js encrypt --rsa "ns/rsa:$tmp/rsa.pub:$pad" <"$tmp/pt4097" >"$tmp/m-rsa"
  must_fail "RSA $pad: decrypt with another RSA key" "$tmp/m-rsa" decrypt --rsa "ns/rsa:$tmp/rsa-other.pem:$pad"
  must_fail "RSA $pad: decrypt with a public key" "$tmp/m-rsa" decrypt --rsa "ns/rsa:$tmp/rsa.pub:$pad"
  for other in "${rsa_paddings[@]}"; do
    [ "$other" = "$pad" ] && continue
    must_fail "RSA $pad message decrypted as $other" "$tmp/m-rsa" decrypt --rsa "ns/rsa:$tmp/rsa.pem:$other"
  done
done

echo "== multi-keyring"
RSA_ENC="--rsa ns/rsa:$tmp/rsa.pub:oaep-sha256"
RSA_DEC="--rsa ns/rsa:$tmp/rsa.pem:oaep-sha256"
for suite in 0478 0578; do
  js encrypt --suite "$suite" $A256 $RSA_ENC <"$tmp/pt4097" >"$tmp/m-multi"
  for dec in "$A256" "$RSA_DEC" "$RSA_DEC $A256"; do
    if js decrypt $dec <"$tmp/m-multi" >"$tmp/out" 2>"$tmp/err" && cmp -s "$tmp/out" "$tmp/pt4097"; then
      ok
    else
      bad "multi (AES generator + RSA child) suite $suite: decrypt with '${dec//$tmp\//}' failed: $(cat "$tmp/err")"
    fi
  done
  must_fail "multi suite $suite: decrypt with an unrelated key" "$tmp/m-multi" decrypt --aes "ns/aes256:$tmp/aes256-other"
done
js encrypt $RSA_ENC $A128 --aes "ns/aes256:$tmp/aes256" <"$tmp/pt1" >"$tmp/m-multi3"
js decrypt $A128 --header-out "$tmp/h.json" <"$tmp/m-multi3" >/dev/null
json_check "three-keyring header: EDK order follows the options" "$tmp/h.json" \
  'j.encryptedDataKeyCount===3 && j.encryptedDataKeys.map(e=>e.providerId+"/"+Buffer.from(e.providerInfoBase64,"base64").subarray(0,6).toString()).join(",")==="ns/rsa,ns/aes128,ns/aes256"'
if js decrypt $A128 --max-edks 3 <"$tmp/m-multi3" >/dev/null 2>&1; then ok; else bad "max-edks 3 with 3 EDKs failed"; fi
must_fail "max-edks 2 with 3 EDKs" "$tmp/m-multi3" decrypt $A128 --max-edks 2
must_fail "encrypt with 3 EDKs under max-edks 2" "$tmp/pt1" encrypt $A128 $A256 $RSA_ENC --max-edks 2
must_fail "max-edks 0 is invalid" "$tmp/m-multi3" decrypt $A128 --max-edks 0
if command -v openssl >/dev/null; then
  case " ${rsa_paddings[*]} " in
    *" pkcs1 "*)
      roundtrip "multi AES + RSA pkcs1, decrypt with RSA" "$tmp/pt4097" \
        "$A256 --rsa ns/rsa1:$tmp/rsa.pem:pkcs1" "--rsa ns/rsa1:$tmp/rsa.pem:pkcs1" ;;
  esac
fi

echo "== encryption context"
js encrypt $A256 --context purpose=test --context "tenant=a b=c" <"$tmp/pt4097" >"$tmp/m-ctx"
if js decrypt $A256 --context purpose=test --context "tenant=a b=c" --context-out "$tmp/ctx.json" \
     --header-out "$tmp/hdr.json" <"$tmp/m-ctx" >"$tmp/out" 2>"$tmp/err" && cmp -s "$tmp/out" "$tmp/pt4097"; then
  ok
else
  bad "context check pass: $(cat "$tmp/err")"
fi
json_check "context-out" "$tmp/ctx.json" 'Object.keys(j).length===2 && j.purpose==="test" && j.tenant==="a b=c"'
json_check "header-out (0478)" "$tmp/hdr.json" \
  'j.version===2 && j.suiteId==="0478" && j.frameLength===4096 && j.encryptedDataKeyCount===1 && j.encryptedDataKeys[0].providerId==="ns" && j.encryptionContext.purpose==="test" && typeof j.suiteData==="string"'
if js decrypt $A256 <"$tmp/m-ctx" >/dev/null 2>&1; then ok; else bad "decrypt without --context failed"; fi
must_fail "context value mismatch" "$tmp/m-ctx" decrypt $A256 --context purpose=prod
must_fail "context key missing" "$tmp/m-ctx" decrypt $A256 --context missing=x
must_fail "context given without =" "$tmp/m-ctx" decrypt $A256 --context purpose
js encrypt --suite 0578 $A256 --context k=v <"$tmp/pt1" >"$tmp/m-ctx5"
js decrypt $A256 --context k=v --context-out "$tmp/ctx5.json" <"$tmp/m-ctx5" >/dev/null
json_check "context-out of 0578 has aws-crypto-public-key" "$tmp/ctx5.json" \
  'j.k==="v" && typeof j["aws-crypto-public-key"]==="string"'
must_fail "encrypt with a reserved context key" "$tmp/pt1" encrypt $A256 --context aws-crypto-public-key=x

echo "== version 1 suites (forbid-allow)"
for suite in 0014 0046 0078 0114 0146 0178 0214 0346 0378; do
  for n in 0 4097; do
    roundtrip "v1 suite $suite size $n" "$tmp/pt$n" \
      "--policy forbid-allow --suite $suite $A256 --context v=1" "--policy forbid-allow $A256 --context v=1"
  done
  js encrypt --policy forbid-allow --suite "$suite" $A256 <"$tmp/pt4097" >"$tmp/m-v1"
  js decrypt --policy forbid-allow $A256 --header-out "$tmp/h1.json" <"$tmp/m-v1" >/dev/null
  json_check "v1 suite $suite header" "$tmp/h1.json" "j.version===1 && j.suiteId===\"$suite\" && j.headerIvLength===12"
  if js decrypt --policy require-allow $A256 <"$tmp/m-v1" >"$tmp/out" 2>"$tmp/err" && cmp -s "$tmp/out" "$tmp/pt4097"; then
    ok
  else
    bad "require-allow decrypt of v1 suite $suite: $(cat "$tmp/err")"
  fi
  must_fail "require-require decrypt of v1 suite $suite" "$tmp/m-v1" decrypt --policy require-require $A256
  must_fail "default policy decrypt of v1 suite $suite" "$tmp/m-v1" decrypt $A256
  must_fail "require-require encrypt with v1 suite $suite" "$tmp/pt1" encrypt --suite "$suite" $A256
done
roundtrip "v1 RSA oaep-sha1 suite 0378" "$tmp/pt4097" \
  "--policy forbid-allow --suite 0378 --rsa ns/rsa:$tmp/rsa.pub:oaep-sha1" "--policy forbid-allow --rsa ns/rsa:$tmp/rsa.pem:oaep-sha1"
must_fail "forbid-allow refuses to encrypt 0478" "$tmp/pt1" encrypt --policy forbid-allow --suite 0478 $A256
roundtrip "forbid-allow decrypts a v2 message" "$tmp/pt4097" "$A256" "--policy forbid-allow $A256"
roundtrip "require-allow encrypts v2" "$tmp/pt4097" "--policy require-allow --suite 0578 $A256" "$A256"

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
