#!/bin/sh
# cli_docs.sh: the man page and the bash completion against the program. tests/cli_docs.py
# compares their commands and options with every --help; here the page must render without
# groff warnings and the completion function must answer as a shell user would see it.
set -u
n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }

# completes WORDS... (the last one is the word being typed) and prints the candidates, sorted
complete_words() {
    bash -c '. completions/ckpt.bash; COMP_WORDS=(ckpt "$@"); COMP_CWORD=$#; _ckpt
             printf "%s\n" "${COMPREPLY[@]}" | sort' ckpt "$@"
}
lines() { printf '%s\n' "$@" | sort; }

check "groff renders docs/ckpt.1 without warnings" \
    'test -z "$(groff -man -ww -z docs/ckpt.1 2>&1)"'
check "the man page names the version ckpt --version prints" \
    'v=$("$CKPT_BIN" --version | sed -n "s/^ckpt \([^ ]*\) .*/\1/p") && grep -q "^\.TH CKPT 1 .* \"libckpt $v\"" docs/ckpt.1'

# the options and commands of both documents against --help (one line a check, prefixed here)
out=$(python3 tests/cli_docs.py "$CKPT_BIN" docs/ckpt.1 completions/ckpt.bash)
status=$?
echo "$out" | while IFS= read -r line; do
    case $line in
    "ok "*) echo "ok $line" | sed 's/^ok ok [0-9]* - /ok cli_docs.py: /' ;;
    "not ok "*) echo "$line" | sed 's/^not ok [0-9]* - /not ok cli_docs.py: /' ;;
    *) echo "$line" ;;
    esac
done
check "cli_docs.py finished (or reported its failures above)" '[ $status -eq 0 ] || echo "$out" | grep -q "^not ok"'

check "completion: commands from a prefix" '[ "$(complete_words co)" = "$(lines convert)" ]'
check "completion: every command from nothing" \
    '[ "$(complete_words "")" = "$(lines convert diff inspect manifest pack unpack verify)" ]'
check "completion: a command's options from a prefix" \
    '[ "$(complete_words convert --ta)" = "$(lines --target)" ]'
check "completion: the source options on a command that opens a source" \
    '[ "$(complete_words inspect --max-r)" = "$(lines --max-rank)" ]'
check "completion: the choices of --target" \
    '[ "$(complete_words convert src dst --target "")" = "$(lines ascend-310p ascend-910b nd)" ]'
check "completion: the choices of --target=, split at = as bash does" \
    '[ "$(complete_words convert src dst --target = a)" = "$(lines ascend-310p ascend-910b)" ]'
check "completion: no guess for a number" '[ -z "$(complete_words convert src --jobs "")" ]'
check "completion: manifest's subcommands" '[ "$(complete_words manifest "")" = "$(lines merge create sums)" ]'
check "completion: paths for SRC" \
    '[ "$(complete_words inspect testdata/sample_)" = "$(lines testdata/sample_golden.json)" ]'
check "completion: global options before a command" \
    '[ "$(complete_words --vers)" = "$(lines --version)" ]'
check "completion: a subcommand's own options" \
    '[ "$(complete_words manifest sums --f)" = "$(lines --format)" ]'
check "completion: a subcommand's option's choices" \
    '[ "$(complete_words manifest sums model --format "")" = "$(lines sha256 xxh128)" ]'
check "completion: a global option's choices before the command" \
    '[ "$(complete_words --progress "")" = "$(lines always auto never)" ]'
check "completion: no guess for -j's number before the command" '[ -z "$(complete_words -j "")" ]'
check "completion: a command's options after global options" \
    '[ "$(complete_words -q -j 2 convert --ta)" = "$(lines --target)" ]'
check "completion: a subcommand after a global option" \
    '[ "$(complete_words manifest -q sums --f)" = "$(lines --format)" ]'
