# ckpt.bash: bash completion for ckpt, installed as share/bash-completion/completions/ckpt.
# Commands, options and the values of options that take a choice.  tests/cli_docs.sh checks
# every list here against `ckpt --help` and each command's --help: change both together.

_ckpt_commands="inspect convert verify diff manifest pack unpack"
# the global options: every command takes them, before or after its name
_ckpt_global_opts="-q --quiet -v --verbose --progress -j --jobs -h --help"
_ckpt_main_opts="$_ckpt_global_opts -V --version"
_ckpt_source_opts="--deepspeed-weights --max-header-size --max-pickle-memory --max-tensors --max-rank
    --max-archive-size --max-bundle-headers --max-expansion"

_ckpt_convert_opts="--target --dtype --quant --nz --nz-fp32-c0 --overflow --rename --rules --max-shard-size"

_ckpt_opts_inspect="--json --objects $_ckpt_source_opts $_ckpt_global_opts"
_ckpt_opts_convert="$_ckpt_convert_opts --max-memory --force --part $_ckpt_source_opts --dry-run --json
    $_ckpt_global_opts"
_ckpt_opts_verify="--against --sums --ignore-missing --max-abs-error --max-rel-error $_ckpt_source_opts $_ckpt_convert_opts
    --json --junit $_ckpt_global_opts"
_ckpt_opts_diff="--names-only --max-abs-error --max-rel-error $_ckpt_source_opts --json --junit $_ckpt_global_opts"
# a command with subcommands: _ckpt_subcommands_CMD, and _ckpt_opts_CMD_SUB for each
_ckpt_subcommands_manifest="merge create sums"
_ckpt_opts_manifest_merge="--force --json $_ckpt_global_opts"
_ckpt_opts_manifest_create="-o --output $_ckpt_source_opts $_ckpt_global_opts"
_ckpt_opts_manifest_sums="--format $_ckpt_global_opts"
_ckpt_opts_pack="--frame-size --volume-size --level --part --merge --force $_ckpt_source_opts
    --json $_ckpt_global_opts"
_ckpt_opts_unpack="--force --json $_ckpt_global_opts"

# the choices of options that take one word of a fixed set
_ckpt_values_target="ascend-310p ascend-910b nd"
_ckpt_values_dtype="f16 bf16 f32 keep"
_ckpt_values_quant="w8a8-dynamic w8a16"
_ckpt_values_nz="all none auto"
_ckpt_values_nz_fp32_c0="16 8"
_ckpt_values_overflow="saturate inf error"
_ckpt_values_rename="hf hf-llama"
_ckpt_values_deepspeed_weights="fp32 module"
_ckpt_values_format="xxh128 sha256"
_ckpt_values_progress="auto always never"

# options whose argument is a number or a K/N: nothing to offer (the other arguments are paths)
_ckpt_free_args="--max-header-size --max-pickle-memory --max-tensors --max-rank --max-archive-size
    --max-bundle-headers --max-expansion --max-shard-size --max-memory --jobs -j --part --max-abs-error --max-rel-error
    --frame-size --volume-size --level"

_ckpt()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev="" cmd="" word i
    [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
    # "--target=nd": bash splits words at '=' (COMP_WORDBREAKS), so the option is two words back
    if [ "$cur" = "=" ]; then
        cur=""
    elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -gt 1 ]; then
        prev=${COMP_WORDS[COMP_CWORD - 2]}
    fi
    # an option's value, before or after the command (ckpt --progress never convert ...)
    local values_var="_ckpt_values_${prev#--}"
    values_var=${values_var//-/_}
    if [[ $prev == --* ]] && [ -n "${!values_var:-}" ]; then
        mapfile -t COMPREPLY < <(compgen -W "${!values_var}" -- "$cur")
        return 0
    fi
    for word in $_ckpt_free_args; do
        if [ "$prev" = "$word" ]; then
            COMPREPLY=()
            return 0
        fi
    done
    # the command is the first word that names one (global options may come before it)
    for ((i = 1; i < COMP_CWORD; i++)); do
        for word in $_ckpt_commands; do
            if [ "${COMP_WORDS[i]}" = "$word" ]; then
                cmd=$word
                break 2
            fi
        done
    done
    if [ -z "$cmd" ]; then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "$_ckpt_main_opts" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$_ckpt_commands" -- "$cur")
        fi
        return 0
    fi

    local opts_var="_ckpt_opts_$cmd" subs_var="_ckpt_subcommands_$cmd" sub=""
    if [ -n "${!subs_var:-}" ]; then
        # a command with subcommands (manifest merge)
        # the first word after the command that is not an option (ckpt manifest -q sums ...)
        local seen=0
        for ((i = 1; i < COMP_CWORD; i++)); do
            if [ "$seen" = 1 ] && [[ ${COMP_WORDS[i]} != -* ]]; then
                sub=${COMP_WORDS[i]}
                break
            fi
            [ "${COMP_WORDS[i]}" = "$cmd" ] && seen=1
        done
        if [ -z "$sub" ]; then
            mapfile -t COMPREPLY < <(compgen -W "${!subs_var}" -- "$cur")
            return 0
        fi
        opts_var="_ckpt_opts_${cmd}_${sub//-/_}"
    fi
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "${!opts_var:-}" -- "$cur")
        return 0
    fi
    # checkpoints, bundles, rules files, folders: any path
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    return 0
}

complete -F _ckpt ckpt
